package checkpoints

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// stepPrefix is the name prefix of checkpoint directories under a root.
const stepPrefix = "step-"

// Manager stores numbered checkpoints as Root/step-00000100/ and prunes old
// ones. A Manager is a plain value; it keeps no state besides the files on
// disk. At most one process may call Save on a given Root at a time.
type Manager struct {
	// Root is the directory holding the step-* checkpoint directories.
	Root string
	// KeepLast is how many of the newest complete checkpoints Save keeps,
	// besides the best one. KeepLast <= 0 keeps every checkpoint.
	KeepLast int
}

// Info describes one complete checkpoint under a Manager's Root.
type Info struct {
	Dir     string
	Step    int
	ValLoss float64 // NaN when unknown
}

// StepDir returns the directory that Save uses for step.
func (m Manager) StepDir(step int) string {
	return filepath.Join(m.Root, fmt.Sprintf("%s%08d", stepPrefix, step))
}

// Save writes the checkpoint for step atomically (see WriteDirAtomic),
// recording step and valLoss in its COMPLETE file, and returns its
// directory. fill writes the checkpoint's files into the directory it is
// given. An existing checkpoint for the same step is replaced.
//
// Before writing, Save removes the temporary directories an earlier crash
// left in Root. After writing, it prunes complete checkpoints other than
// the newest KeepLast, the one with the lowest validation loss (NaN is
// never best) and the one just written: each is first renamed out of sight
// (to ".prune-step-…"), so that a crash while deleting its files cannot
// leave a checkpoint that looks complete with files missing. Entries it did
// not create are left alone.
func (m Manager) Save(step int, valLoss float64, fill func(dir string) error) (string, error) {
	if step < 0 {
		return "", fmt.Errorf("save checkpoint in %s: negative step %d", m.Root, step)
	}
	if err := os.MkdirAll(m.Root, 0o755); err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	if err := removeLeftovers(m.Root); err != nil {
		return "", fmt.Errorf("save checkpoint in %s: clean up: %w", m.Root, err)
	}
	dir := m.StepDir(step)
	// writeDirAtomic records a NaN or infinite valLoss as unknown.
	done := Completion{Step: step, ValLoss: &valLoss} // writeDirAtomic stamps the time when the files are written
	if err := writeDirAtomic(dir, done, fill); err != nil {
		return "", err
	}
	if err := m.prune(dir); err != nil {
		return dir, err
	}
	return dir, nil
}

// prune removes complete checkpoints that are neither among the newest
// KeepLast, the best, nor keep.
func (m Manager) prune(keep string) error {
	if m.KeepLast <= 0 {
		return nil
	}
	infos, err := m.List()
	if err != nil {
		return err
	}
	best := bestIndex(infos)
	for i, info := range infos {
		if i >= len(infos)-m.KeepLast || i == best || info.Dir == keep {
			continue
		}
		if err := m.Remove(info.Dir); err != nil {
			return fmt.Errorf("prune checkpoint %s: %w", info.Dir, err)
		}
	}
	return nil
}

// Remove deletes the checkpoint directory dir in Root in two steps: a rename to
// ".prune-<name>-<random>", made durable, takes it out of List at once;
// then its files are deleted. A crash in between leaves only a leftover
// that the next Save or Clean deletes.
func (m Manager) Remove(dir string) error {
	aside := filepath.Join(m.Root, prunePrefix+filepath.Base(dir)+"-"+randomSuffix())
	if err := os.Rename(dir, aside); err != nil {
		return err
	}
	if err := syncDir(m.Root); err != nil {
		return err
	}
	if err := fault("prune-renamed", aside); err != nil {
		return err
	}
	return os.RemoveAll(aside)
}

// Owns reports whether name is an entry that Manager creates in Root: a checkpoint
// directory "step-<digits>" or a leftover of an interrupted write or prune.
func (m Manager) Owns(name string) bool {
	if _, ok := parseStepName(name); ok {
		return true
	}
	_, _, ok := leftover(name)
	return ok
}

// faultHook, when a test sets it, is called at the named points of the
// Manager's work with the path concerned; an error it returns stops the
// work there, as a crash would, with nothing cleaned up.
var faultHook func(point, path string) error

// fault calls faultHook if it is set.
func fault(point, path string) error {
	if faultHook == nil {
		return nil
	}
	return faultHook(point, path)
}

// Clean removes what an interrupted run can leave in Root: the leftovers of
// interrupted writes and prunes (a set-aside checkpoint whose replacement
// never arrived is moved back instead), and step-* directories without a
// valid COMPLETE marker, empty ones included. It returns the names of the
// entries it removed or moved back. Entries whose names Manager does not create are left alone.
// Call it only while holding the run's lock (see LockRun): a checkpoint
// being written by another process looks incomplete.
func (m Manager) Clean() ([]string, error) {
	ents, err := os.ReadDir(m.Root)
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", m.Root, err)
	}
	var removed []string
	for _, de := range ents {
		if _, _, ok := leftover(de.Name()); ok {
			removed = append(removed, de.Name())
		}
	}
	if err := removeLeftovers(m.Root); err != nil {
		return nil, fmt.Errorf("clean %s: %w", m.Root, err)
	}
	for _, de := range ents {
		if _, ok := parseStepName(de.Name()); !ok || !de.IsDir() {
			continue
		}
		dir := filepath.Join(m.Root, de.Name())
		if IsComplete(dir) {
			continue
		}
		if err := m.Remove(dir); err != nil {
			return nil, fmt.Errorf("clean %s: remove incomplete checkpoint %s: %w", m.Root, dir, err)
		}
		removed = append(removed, de.Name())
	}
	return removed, nil
}

// bestIndex returns the index of the checkpoint with the lowest finite
// validation loss (the newest on ties), or -1 if there is none.
func bestIndex(infos []Info) int {
	best := -1
	for i, info := range infos {
		if math.IsNaN(info.ValLoss) || math.IsInf(info.ValLoss, 0) {
			continue
		}
		if best < 0 || info.ValLoss <= infos[best].ValLoss {
			best = i
		}
	}
	return best
}

// List returns the complete checkpoints under Root sorted by ascending step.
// Incomplete and temporary directories are skipped.
func (m Manager) List() ([]Info, error) {
	ents, err := os.ReadDir(m.Root)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var infos []Info
	for _, de := range ents {
		step, ok := parseStepName(de.Name())
		if !ok || !de.IsDir() {
			continue
		}
		dir := filepath.Join(m.Root, de.Name())
		c, err := ReadCompletion(dir)
		if err != nil {
			continue // incomplete
		}
		infos = append(infos, Info{Dir: dir, Step: step, ValLoss: c.loss()})
	}
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(cmp.Compare(a.Step, b.Step), strings.Compare(a.Dir, b.Dir))
	})
	return infos, nil
}

// parseStepName parses "step-<digits>" directory names.
func parseStepName(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, stepPrefix)
	if !ok || digits == "" {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	step, err := strconv.Atoi(digits)
	if err != nil {
		return 0, false
	}
	return step, true
}

// Latest returns the directory of the complete checkpoint with the highest
// step under Root.
func (m Manager) Latest() (string, error) {
	infos, err := m.List()
	if err != nil {
		return "", err
	}
	if len(infos) == 0 {
		return "", fmt.Errorf("no complete checkpoint found in %s", m.Root)
	}
	return infos[len(infos)-1].Dir, nil
}

// Best returns the directory of the complete checkpoint with the lowest
// finite validation loss under Root (the newest on ties).
func (m Manager) Best() (string, error) {
	infos, err := m.List()
	if err != nil {
		return "", err
	}
	i := bestIndex(infos)
	if i < 0 {
		return "", fmt.Errorf("no complete checkpoint with a validation loss found in %s", m.Root)
	}
	return infos[i].Dir, nil
}
