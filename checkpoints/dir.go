package checkpoints

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxCompleteBytes bounds the size of a COMPLETE file that we will read.
const maxCompleteBytes = 64 << 10

// Temporary name prefixes used beside a target directory.
const (
	tmpPrefix   = ".tmp-"
	oldPrefix   = ".old-"
	prunePrefix = ".prune-"
)

// Completion is the content of a COMPLETE marker file.
type Completion struct {
	// Step is the training step of the checkpoint (0 when written by
	// WriteDirAtomic directly).
	Step int `json:"step"`
	// ValLoss is the validation loss recorded by Manager.Save; nil when
	// unknown or not finite (JSON cannot represent NaN or Inf).
	ValLoss *float64 `json:"val_loss,omitempty"`
	// Time is when the checkpoint was completed.
	Time time.Time `json:"time"`
}

// loss returns ValLoss, or NaN when it is absent.
func (c Completion) loss() float64 {
	if c.ValLoss == nil {
		return math.NaN()
	}
	return *c.ValLoss
}

// WriteDirAtomic creates or replaces the directory dir crash-safely.
//
// It creates a temporary directory beside dir (same parent, named
// ".tmp-<base>-<random>"), calls fill with its path, writes the COMPLETE
// marker, and fsyncs every regular file and directory in it. Then, if dir
// already exists, it is renamed aside to ".old-<base>-<random>", the
// temporary directory is renamed to dir, the parent is fsynced, and the old
// directory is removed. The parent directory is created if needed.
//
// On any error the temporary directory is removed and an existing dir is
// left untouched; the error names the path.
func WriteDirAtomic(dir string, fill func(tmpDir string) error) error {
	return writeDirAtomic(dir, Completion{}, fill)
}

func writeDirAtomic(dir string, done Completion, fill func(tmpDir string) error) error {
	dir = filepath.Clean(dir)
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	if base == "" || base == "." || base == ".." || base == string(filepath.Separator) {
		return fmt.Errorf("write checkpoint dir %s: invalid directory name", dir)
	}
	fail := func(err error) error {
		return fmt.Errorf("write checkpoint dir %s: %w", dir, err)
	}
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return fail(errors.New("exists and is not a directory"))
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix+base+"-")
	if err != nil {
		return fail(err)
	}
	committed := false
	defer func() {
		if !committed { // also cleans up when fill panics
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := fill(tmp); err != nil {
		return fail(err)
	}
	if done.Time.IsZero() {
		done.Time = time.Now().UTC()
	}
	if done.ValLoss != nil && (math.IsNaN(*done.ValLoss) || math.IsInf(*done.ValLoss, 0)) {
		done.ValLoss = nil
	}
	if err := WriteJSON(filepath.Join(tmp, CompleteFile), done); err != nil {
		return fail(err)
	}
	if err := syncTree(tmp); err != nil {
		return fail(err)
	}

	old := ""
	switch ok, err := exists(dir); {
	case err != nil:
		return fail(err)
	case ok:
		old = filepath.Join(parent, oldPrefix+base+"-"+randomSuffix())
		if err := os.Rename(dir, old); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			if rerr := os.Rename(old, dir); rerr != nil {
				return fail(fmt.Errorf("%w (and restoring the previous directory from %s failed: %v)", err, old, rerr))
			}
		}
		return fail(err)
	}
	committed = true
	if err := syncDir(parent); err != nil {
		return fail(err)
	}
	if old != "" {
		// The new directory is durable; failing to delete the old copy
		// only leaks space, and Manager.Save cleans such leftovers.
		_ = os.RemoveAll(old)
	}
	return nil
}

// IsComplete reports whether dir is a complete checkpoint directory, that
// is, whether it contains a readable, valid COMPLETE marker file.
func IsComplete(dir string) bool {
	_, err := ReadCompletion(dir)
	return err == nil
}

// ReadCompletion reads the COMPLETE marker of the checkpoint directory dir.
func ReadCompletion(dir string) (Completion, error) {
	var c Completion
	path := filepath.Join(dir, CompleteFile)
	fi, err := os.Lstat(path)
	if err != nil {
		return c, fmt.Errorf("checkpoint %s is not complete: %w", dir, err)
	}
	if !fi.Mode().IsRegular() {
		return c, fmt.Errorf("checkpoint %s is not complete: %s is not a regular file", dir, path)
	}
	if err := ReadJSON(path, &c, maxCompleteBytes); err != nil {
		return c, fmt.Errorf("checkpoint %s is not complete: %w", dir, err)
	}
	return c, nil
}

// CheckComplete returns an error unless dir may be loaded as a checkpoint
// directory given directly: a directory holding a COMPLETE file must hold a
// valid one, and a "step-<digits>" directory (which only Manager writes)
// must hold one. Other directories, such as a model saved on its own, pass.
func CheckComplete(dir string) error {
	_, err := ReadCompletion(dir)
	if err == nil {
		return nil
	}
	if _, statErr := os.Lstat(filepath.Join(dir, CompleteFile)); statErr == nil {
		return err
	}
	if _, isStep := parseStepName(filepath.Base(filepath.Clean(dir))); isStep {
		return fmt.Errorf("checkpoint %s is not complete (no %s file): it was being written or pruned when its run stopped", dir, CompleteFile)
	}
	return nil
}

// Resolve returns the checkpoint directory to load for path, which may be
// either a checkpoint directory itself (it contains COMPLETE) or a checkpoint
// root holding step-* directories, in which case the newest complete
// checkpoint in it is returned.
func Resolve(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("resolve checkpoint: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("resolve checkpoint %s: not a directory", path)
	}
	if IsComplete(path) {
		return path, nil
	}
	dir, err := Manager{Root: path}.Latest()
	if err != nil {
		if _, statErr := os.Lstat(filepath.Join(path, CompleteFile)); statErr == nil {
			return "", fmt.Errorf("resolve checkpoint %s: %s file is invalid and no complete step-* checkpoints are inside", path, CompleteFile)
		}
		return "", fmt.Errorf("resolve checkpoint %s: neither a complete checkpoint (no %s file) nor a root holding complete step-* checkpoints", path, CompleteFile)
	}
	return dir, nil
}

// leftover reports whether name is an entry that Manager and writeDirAtomic
// leave beside a checkpoint "step-<digits>" only when interrupted: a
// temporary directory ".tmp-<step>-<suffix>", a set-aside previous version
// ".old-<step>-<suffix>", or a checkpoint being pruned
// ".prune-<step>-<suffix>". It returns the prefix and the step directory's
// name. Names of any other form, a user's ".tmp-notes" included, are not
// leftovers.
func leftover(name string) (prefix, stepName string, ok bool) {
	for _, p := range []string{tmpPrefix, oldPrefix, prunePrefix} {
		rest, found := strings.CutPrefix(name, p)
		if !found {
			continue
		}
		i := strings.LastIndexByte(rest, '-')
		if i < 0 || i == len(rest)-1 || !isAlnum(rest[i+1:]) {
			return "", "", false
		}
		if _, isStep := parseStepName(rest[:i]); !isStep {
			return "", "", false
		}
		return p, rest[:i], true
	}
	return "", "", false
}

// isAlnum reports whether s holds only ASCII letters and digits.
func isAlnum(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// removeLeftovers removes the leftovers (see leftover) of interrupted
// writes and prunes in root. A set-aside ".old-<step>-*" directory is moved
// back to <step> if <step> is missing (the crash happened between the two
// renames of writeDirAtomic) and it is complete; otherwise it is removed.
func removeLeftovers(root string) error {
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, de := range ents {
		prefix, stepName, ok := leftover(de.Name())
		if !ok {
			continue
		}
		p := filepath.Join(root, de.Name())
		if prefix == oldPrefix && de.IsDir() && IsComplete(p) {
			target := filepath.Join(root, stepName)
			if ok, err := exists(target); err == nil && !ok {
				if err := os.Rename(p, target); err != nil {
					return err
				}
				continue
			}
		}
		if err := os.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return syncDir(root)
}
