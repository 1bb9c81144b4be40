package study

import (
	"context"
	"errors"
	"testing"

	"mqa/checkpoints"
)

// TestRunRefusesLockedDirectory: a comparison whose output directory another run holds is
// refused before it trains anything, with the error that names the lock.
func TestRunRefusesLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	held, err := checkpoints.LockRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	_, err = Run(context.Background(), Spec{Preset: "tiny", Device: "cpu", Out: dir, Tasks: []string{"lm"}, Attns: []string{"mha"}, Steps: 1, Seeds: 1})
	if !errors.Is(err, checkpoints.ErrLocked) {
		t.Fatalf("Run on a locked directory: %v, want an error wrapping ErrLocked", err)
	}
}
