package checkpoints

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// errCrash stands for the process dying at a fault point.
var errCrash = errors.New("simulated crash")

// checkpointFiles are the files every test checkpoint holds.
var checkpointFiles = map[string]string{"model.bin": "weights", "tokenizer.json": "tok"}

// assertWhole fails unless every complete checkpoint under m.Root has all of checkpointFiles.
func assertWhole(t *testing.T, m Manager) {
	t.Helper()
	infos, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		for name, want := range checkpointFiles {
			b, err := os.ReadFile(filepath.Join(in.Dir, name))
			if err != nil || string(b) != want {
				t.Errorf("checkpoint %s says complete, but %s: %q, %v", in.Dir, name, b, err)
			}
		}
	}
}

// TestPruneCrashWindows stops pruning, as a crash would, after the checkpoint being pruned
// was renamed aside and half of its files were deleted: no checkpoint may look complete with
// files missing, and the next Save (or Clean) removes what is left.
func TestPruneCrashWindows(t *testing.T) {
	for _, next := range []string{"save", "clean"} {
		t.Run(next, func(t *testing.T) {
			m := Manager{Root: t.TempDir(), KeepLast: 1}
			for _, step := range []int{1, 2} {
				if _, err := m.Save(step, float64(10-step), writeFiles(checkpointFiles)); err != nil {
					t.Fatal(err)
				}
			}
			var aside string
			faultHook = func(point, path string) error {
				if point != "prune-renamed" {
					return nil
				}
				aside = path
				// The deletion got as far as one file (COMPLETE is still there).
				if err := os.Remove(filepath.Join(path, "tokenizer.json")); err != nil {
					t.Fatal(err)
				}
				return errCrash
			}
			_, err := m.Save(3, 5, writeFiles(checkpointFiles))
			faultHook = nil
			if !errors.Is(err, errCrash) {
				t.Fatalf("Save returned %v, want the simulated crash", err)
			}
			if !strings.HasPrefix(filepath.Base(aside), ".prune-step-00000002-") {
				t.Fatalf("the pruned checkpoint was set aside as %q", aside)
			}
			if got := stepsOf(t, m); !slices.Equal(got, []int{3}) {
				t.Errorf("after the crash the complete checkpoints are %v, want [3]", got)
			}
			assertWhole(t, m)
			if next == "save" {
				if _, err := m.Save(4, 4, writeFiles(checkpointFiles)); err != nil {
					t.Fatal(err)
				}
			} else if _, err := m.Clean(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(aside); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s is still there after %s: %v", aside, next, err)
			}
			assertWhole(t, m)
		})
	}
}

// TestCleanRemovesOnlyLeftovers fills a run directory with what crashes leave (incomplete
// and empty step directories, temporary, set-aside and half-pruned checkpoints) and with
// a user's files of similar names: Clean removes exactly the former, and moves a set-aside
// checkpoint back when its replacement never arrived.
func TestCleanRemovesOnlyLeftovers(t *testing.T) {
	m := Manager{Root: t.TempDir(), KeepLast: 0}
	if _, err := m.Save(10, 1, writeFiles(checkpointFiles)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Save(20, 1, writeFiles(checkpointFiles)); err != nil {
		t.Fatal(err)
	}
	// step 20 was set aside for a replacement that never arrived.
	if err := os.Rename(m.StepDir(20), filepath.Join(m.Root, ".old-step-00000020-a1b2c3")); err != nil {
		t.Fatal(err)
	}
	mkdir := func(name string, files map[string]string) {
		t.Helper()
		if err := writeFiles(files)(filepath.Join(m.Root, name)); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(m.Root, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	leftovers := map[string]map[string]string{
		"step-00000104":             nil,                                   // empty
		"step-00000105":             {"model.bin": "half"},                 // no COMPLETE
		"step-00000106":             {"model.bin": "x", CompleteFile: "{"}, // a torn COMPLETE
		".tmp-step-00000107-12345":  {"model.bin": "x"},
		".prune-step-00000005-ab12": {"model.bin": "x", CompleteFile: `{"step":5}`},
	}
	user := map[string]map[string]string{
		"notes":                 {"a.txt": "mine"},
		".tmp-notes":            {"b.txt": "mine"},
		".old-drafts":           {"c.txt": "mine"},
		".tmp-step-00000107":    {"d.txt": "mine"}, // no random suffix: not ours
		".prune-step-12ab-ff00": {"e.txt": "mine"},
		"step-12ab":             {"f.txt": "mine"},
	}
	for name, files := range leftovers {
		mkdir(name, files)
	}
	for name, files := range user {
		mkdir(name, files)
	}
	removed, err := m.Clean()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	wantRemoved := []string{".old-step-00000020-a1b2c3"}
	for name := range leftovers {
		wantRemoved = append(wantRemoved, name)
	}
	slices.Sort(wantRemoved)
	if !slices.Equal(removed, wantRemoved) {
		t.Errorf("Clean reported %v, want %v", removed, wantRemoved)
	}
	want := []string{"step-00000010", "step-00000020"}
	for name := range user {
		want = append(want, name)
	}
	slices.Sort(want)
	if got := names(t, m.Root); !slices.Equal(got, want) {
		t.Errorf("after Clean the run directory holds %v, want %v", got, want)
	}
	if got := stepsOf(t, m); !slices.Equal(got, []int{10, 20}) {
		t.Errorf("complete checkpoints %v, want [10 20]", got)
	}
	assertWhole(t, m)
}

// TestSaveKeepsUserTempFiles: Save's clean-up of crashed writes leaves a user's ".tmp-*"
// and ".old-*" entries alone.
func TestSaveKeepsUserTempFiles(t *testing.T) {
	m := Manager{Root: t.TempDir(), KeepLast: 1}
	for _, name := range []string{".tmp-mine", ".old-backup-1"} {
		if err := os.WriteFile(filepath.Join(m.Root, name), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Save(1, 1, writeFiles(nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{".old-backup-1", ".tmp-mine", "step-00000001"}
	if got := names(t, m.Root); !slices.Equal(got, want) {
		t.Errorf("root holds %v, want %v", got, want)
	}
}

// TestLockRun: while one holder has the lock, a second LockRun is refused with the holder's
// pid; after Unlock the lock can be taken again.
func TestLockRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	first, err := LockRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockRun(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second LockRun: %v, want ErrLocked naming %s and pid %d", err, dir, os.Getpid())
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := LockRun(dir)
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	if err := again.Unlock(); err != nil {
		t.Fatal(err)
	}
}
