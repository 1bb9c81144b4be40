package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchTrainProfiles runs a short CPU training benchmark with both profile flags: the
// output names the BLAS and its SGEMM rate, and both profiles are written (gzip-compressed
// protocol buffers, as go tool pprof reads them).
func TestBenchTrainProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	code, out := capture(t, "bench", "train", "-device", "cpu", "-preset", "tiny", "-batch", "2", "-seq", "8",
		"-vocab", "50", "-steps", "2", "-warmup", "1", "-cpuprofile", cpu, "-memprofile", mem)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"BLAS ", "GFLOP/s of model FLOPs", "SGEMM 512³"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
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

func TestProfileFlagErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir", "cpu.pprof")
	code, _ := capture(t, "bench", "train", "-device", "cpu", "-preset", "tiny", "-batch", "2", "-seq", "8",
		"-vocab", "50", "-steps", "1", "-warmup", "0", "-cpuprofile", missing)
	if code != 1 {
		t.Errorf("an unwritable -cpuprofile: exit %d, want 1", code)
	}
}
