package profile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAround writes both profiles around some work: each is a gzip-compressed protocol
// buffer, as go tool pprof reads them, and f's error comes back.
func TestAround(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	sink := 0
	want := errors.New("the work failed")
	err := Around(cpu, mem, func() error {
		for i := range 1 << 16 {
			sink += len(make([]byte, i%64))
		}
		return want
	})
	if !errors.Is(err, want) || sink == 0 {
		t.Errorf("Around returned %v, want the work's error", err)
	}
	for _, path := range []string{cpu, mem} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s is not a gzip-compressed profile (%d bytes)", path, len(b))
		}
	}
}

func TestUnwritable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir", "p.pprof")
	if _, err := Start(missing, ""); err == nil || !strings.HasPrefix(err.Error(), "-cpuprofile: ") {
		t.Errorf("an unwritable CPU profile: %v", err)
	}
	stop, err := Start("", missing)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err == nil || !strings.HasPrefix(err.Error(), "-memprofile: ") {
		t.Errorf("an unwritable allocation profile: %v", err)
	}
	if err := Around("", "", func() error { return nil }); err != nil {
		t.Errorf("no profiles: %v", err)
	}
}
