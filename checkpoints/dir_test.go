package checkpoints

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFiles(files map[string]string) func(string) error {
	return func(dir string) error {
		for name, content := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// names lists the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteDirAtomic(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	if IsComplete(dir) {
		t.Error("missing dir reported complete")
	}
	if err := WriteDirAtomic(dir, writeFiles(map[string]string{"a.txt": "one", "sub/b.txt": "two"})); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "sub/b.txt")); got != "two" {
		t.Errorf("b.txt = %q", got)
	}
	if !IsComplete(dir) {
		t.Error("written dir is not complete")
	}
	if c, err := ReadCompletion(dir); err != nil || c.Time.IsZero() {
		t.Errorf("completion: %+v, %v", c, err)
	}

	// Replacing removes the old content and leaves nothing beside it.
	if err := WriteDirAtomic(dir, writeFiles(map[string]string{"c.txt": "three"})); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{CompleteFile, "c.txt"}) {
		t.Errorf("dir holds %v", got)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"ckpt"}) {
		t.Errorf("parent holds %v", got)
	}
}

func TestWriteDirAtomicFailures(t *testing.T) {
	setup := func(t *testing.T) (parent, dir string) {
		parent = t.TempDir()
		dir = filepath.Join(parent, "ckpt")
		if err := WriteDirAtomic(dir, writeFiles(map[string]string{"w.bin": "old"})); err != nil {
			t.Fatal(err)
		}
		return parent, dir
	}
	checkIntact := func(t *testing.T, parent, dir string) {
		t.Helper()
		if got := readFile(t, filepath.Join(dir, "w.bin")); got != "old" {
			t.Errorf("old content changed to %q", got)
		}
		if !IsComplete(dir) {
			t.Error("old dir no longer complete")
		}
		if got := names(t, parent); !slices.Equal(got, []string{"ckpt"}) {
			t.Errorf("parent holds %v", got)
		}
	}

	t.Run("fill fails", func(t *testing.T) {
		parent, dir := setup(t)
		boom := errors.New("boom")
		err := WriteDirAtomic(dir, func(tmp string) error {
			if err := writeFiles(map[string]string{"w.bin": "new"})(tmp); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), dir) {
			t.Errorf("got %v", err)
		}
		checkIntact(t, parent, dir)
	})

	t.Run("fill cannot create a subdirectory", func(t *testing.T) {
		parent, dir := setup(t)
		err := WriteDirAtomic(dir, func(tmp string) error {
			// A regular file blocks the directory that fill wants.
			if err := os.WriteFile(filepath.Join(tmp, "sub"), nil, 0o644); err != nil {
				return err
			}
			return os.Mkdir(filepath.Join(tmp, "sub"), 0o755)
		})
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("got %v", err)
		}
		checkIntact(t, parent, dir)
	})

	t.Run("fill panics", func(t *testing.T) {
		parent, dir := setup(t)
		func() {
			defer func() { recover() }()
			WriteDirAtomic(dir, func(string) error { panic("crash") })
		}()
		checkIntact(t, parent, dir)
	})

	t.Run("parent is a file", func(t *testing.T) {
		parent := t.TempDir()
		blocker := filepath.Join(parent, "file")
		if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(blocker, "ckpt")
		called := false
		err := WriteDirAtomic(dir, func(string) error { called = true; return nil })
		if err == nil || !strings.Contains(err.Error(), dir) || called {
			t.Errorf("got %v (fill called: %v)", err, called)
		}
		if got := readFile(t, blocker); got != "x" {
			t.Errorf("blocker changed to %q", got)
		}
	})

	t.Run("target is a file", func(t *testing.T) {
		parent := t.TempDir()
		target := filepath.Join(parent, "ckpt")
		if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := WriteDirAtomic(target, func(string) error { return nil })
		if err == nil || !strings.Contains(err.Error(), target) {
			t.Errorf("got %v", err)
		}
		if got := names(t, parent); !slices.Equal(got, []string{"ckpt"}) {
			t.Errorf("parent holds %v", got)
		}
	})

	t.Run("read-only parent", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: permissions are not enforced")
		}
		parent, dir := setup(t)
		if err := os.Chmod(parent, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(parent, 0o755)
		err := WriteDirAtomic(dir, writeFiles(map[string]string{"w.bin": "new"}))
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("got %v", err)
		}
		checkIntact(t, parent, dir)
	})
}

func TestIsComplete(t *testing.T) {
	dir := t.TempDir()
	if IsComplete(dir) {
		t.Error("empty dir is complete")
	}
	marker := filepath.Join(dir, CompleteFile)
	if err := os.WriteFile(marker, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if IsComplete(dir) {
		t.Error("dir with corrupt COMPLETE is complete")
	}
	if err := os.WriteFile(marker, []byte(`{"step":3,"time":"2024-01-02T03:04:05Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if !IsComplete(dir) {
		t.Error("dir with valid COMPLETE is not complete")
	}
}

func stepsOf(t *testing.T, m Manager) []int {
	t.Helper()
	infos, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, in := range infos {
		steps = append(steps, in.Step)
	}
	return steps
}

func TestManagerPruning(t *testing.T) {
	m := Manager{Root: filepath.Join(t.TempDir(), "run"), KeepLast: 2}
	nan := math.NaN()
	saves := []struct {
		step int
		loss float64
		want []int // complete checkpoints after the save
	}{
		{100, 3.0, []int{100}},
		{200, 1.0, []int{100, 200}},
		{300, 2.0, []int{200, 300}},         // 100 pruned
		{400, nan, []int{200, 300, 400}},    // 200 kept as best
		{500, 2.5, []int{200, 400, 500}},    // NaN never best, but 400 is recent
		{600, 0.5, []int{500, 600}},         // new best; 200 pruned
		{700, math.Inf(1), []int{600, 700}}, // Inf is not best either
		{50, 9.0, []int{50, 600, 700}},      // the checkpoint just written is kept
		{800, 0.5, []int{700, 800}},         // ties go to the newer checkpoint
	}
	for _, s := range saves {
		dir, err := m.Save(s.step, s.loss, writeFiles(map[string]string{"w.bin": "x"}))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(m.Root, fmt.Sprintf("step-%08d", s.step)); dir != want {
			t.Errorf("Save returned %s, want %s", dir, want)
		}
		if got := stepsOf(t, m); !slices.Equal(got, s.want) {
			t.Errorf("after saving step %d: have %v, want %v", s.step, got, s.want)
		}
	}
	latest, err := m.Latest()
	if err != nil || latest != m.StepDir(800) {
		t.Errorf("Latest = %s, %v", latest, err)
	}
	best, err := m.Best()
	if err != nil || best != m.StepDir(800) {
		t.Errorf("Best = %s, %v", best, err)
	}
	// +Inf is recorded as unknown (NaN); finite losses round-trip.
	infos, err := m.List()
	if err != nil || len(infos) != 2 || !math.IsNaN(infos[0].ValLoss) || infos[1].ValLoss != 0.5 {
		t.Errorf("List = %+v, %v", infos, err)
	}
}

func TestManagerKeepAll(t *testing.T) {
	m := Manager{Root: t.TempDir()}
	for step := 1; step <= 4; step++ {
		if _, err := m.Save(step, float64(step), writeFiles(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if got := stepsOf(t, m); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("have %v", got)
	}
	// Saving the same step again replaces it.
	if _, err := m.Save(4, 0.1, writeFiles(map[string]string{"new": "y"})); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(m.StepDir(4), "new")); got != "y" {
		t.Errorf("replaced checkpoint holds %q", got)
	}
	if best, _ := m.Best(); best != m.StepDir(4) {
		t.Errorf("Best = %s", best)
	}
}

func TestManagerIgnoresIncomplete(t *testing.T) {
	root := t.TempDir()
	m := Manager{Root: root, KeepLast: 1}
	if _, err := m.Latest(); err == nil || !strings.Contains(err.Error(), "no complete checkpoint") || !strings.Contains(err.Error(), root) {
		t.Errorf("empty root: %v", err)
	}
	if _, err := m.Best(); err == nil || !strings.Contains(err.Error(), root) {
		t.Errorf("empty root Best: %v", err)
	}
	if _, err := m.Save(100, math.NaN(), writeFiles(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Best(); err == nil {
		t.Error("Best found a checkpoint with NaN loss")
	}
	// A newer step without COMPLETE, a crashed temp dir with COMPLETE,
	// and unrelated entries must all be ignored.
	if err := os.MkdirAll(filepath.Join(root, "step-00000900"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, ".tmp-step-00001000-123")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(filepath.Join(tmp, CompleteFile), Completion{Step: 1000}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "step-00002000"), []byte("file"), 0o644)
	os.MkdirAll(filepath.Join(root, "step-12ab"), 0o755)
	os.MkdirAll(filepath.Join(root, "notes"), 0o755)

	latest, err := m.Latest()
	if err != nil || latest != m.StepDir(100) {
		t.Errorf("Latest = %s, %v", latest, err)
	}
	if got, err := Resolve(root); err != nil || got != m.StepDir(100) {
		t.Errorf("Resolve(root) = %s, %v", got, err)
	}

	// Save cleans the temp dir but leaves directories it did not create.
	if _, err := m.Save(200, 1, writeFiles(nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{"notes", "step-00000200", "step-00000900", "step-00002000", "step-12ab"}
	if got := names(t, root); !slices.Equal(got, want) {
		t.Errorf("root holds %v, want %v", got, want)
	}
}

func TestManagerRecoversSetAsideDir(t *testing.T) {
	// Simulate a crash between renaming the old checkpoint aside and
	// renaming the new one into place.
	m := Manager{Root: t.TempDir(), KeepLast: 5}
	if _, err := m.Save(100, 1, writeFiles(map[string]string{"w": "old"})); err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(m.Root, ".old-step-00000100-abcdef")
	if err := os.Rename(m.StepDir(100), aside); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(m.Root, ".tmp-step-00000100-xyz"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Save(200, 1, writeFiles(nil)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(m.StepDir(100), "w")); got != "old" {
		t.Errorf("recovered checkpoint holds %q", got)
	}
	if got := names(t, m.Root); !slices.Equal(got, []string{"step-00000100", "step-00000200"}) {
		t.Errorf("root holds %v", got)
	}
}

func TestManagerSaveErrors(t *testing.T) {
	m := Manager{Root: t.TempDir(), KeepLast: 1}
	if _, err := m.Save(-1, 0, writeFiles(nil)); err == nil {
		t.Error("negative step accepted")
	}
	boom := errors.New("disk full")
	if _, err := m.Save(1, 0, func(string) error { return boom }); !errors.Is(err, boom) || !strings.Contains(err.Error(), m.StepDir(1)) {
		t.Errorf("got %v", err)
	}
	if got := names(t, m.Root); len(got) != 0 {
		t.Errorf("root holds %v after failed save", got)
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	m := Manager{Root: root}
	for _, step := range []int{5, 10} {
		if _, err := m.Save(step, 1, writeFiles(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Resolve(m.StepDir(5)); err != nil || got != m.StepDir(5) {
		t.Errorf("Resolve(checkpoint) = %s, %v", got, err)
	}
	if got, err := Resolve(root); err != nil || got != m.StepDir(10) {
		t.Errorf("Resolve(root) = %s, %v", got, err)
	}
	empty := t.TempDir()
	if _, err := Resolve(empty); err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "neither") {
		t.Errorf("Resolve(empty) = %v", err)
	}
	missing := filepath.Join(empty, "nope")
	if _, err := Resolve(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Resolve(missing) = %v", err)
	}
	file := filepath.Join(empty, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Resolve(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Resolve(file) = %v", err)
	}
}
