//go:build unix

package checkpoints

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFIFOsAreRefused: reading a named pipe in place of a JSON or safetensors file is an
// error at once; before, opening it waited for a writer forever.
func TestFIFOsAreRefused(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	readers := map[string]func() error{
		"ReadJSON":              func() error { var v any; return ReadJSON(fifo, &v, 1<<10) },
		"ReadSafetensors":       func() error { _, _, err := ReadSafetensors(fifo); return err },
		"ReadSafetensorsHeader": func() error { _, err := ReadSafetensorsHeader(fifo); return err },
		"OpenRegular": func() error {
			f, err := OpenRegular(fifo)
			if err == nil {
				f.Close()
			}
			return err
		},
	}
	for name, read := range readers {
		done := make(chan error, 1)
		go func() { done <- read() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "named pipe (FIFO)") || !strings.Contains(err.Error(), fifo) {
				t.Errorf("%s on a FIFO: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s on a FIFO has not returned after 10 s", name)
		}
	}
}
