package runner

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"mqa/checkpoints"
)

// isRunEntry reports whether name is an entry that training creates in a run directory.
func isRunEntry(name string) bool {
	return (checkpoints.Manager{}).Owns(name) || name == checkpoints.LockFile || name == checkpoints.LogFile ||
		strings.HasPrefix(name, ".tmp-"+checkpoints.LogFile+"-")
}

// openFresh takes the lock of the run directory out for a new run and checks what is in
// it. An empty or new directory, or one holding only what a run that stopped before its
// first complete checkpoint left, is cleaned (saying so on log) and used. A directory
// holding an earlier run's checkpoints, or files training does not create, is refused
// unless force; with force an earlier run's checkpoints and log are deleted and every
// other file is kept.
func openFresh(out string, force bool, log io.Writer) (*checkpoints.RunLock, error) {
	lockPath := filepath.Join(out, checkpoints.LockFile)
	_, statErr := os.Lstat(lockPath)
	hadLock := statErr == nil
	lock, err := checkpoints.LockRun(out)
	if err != nil {
		return nil, err
	}
	refuse := func(err error) (*checkpoints.RunLock, error) {
		_ = lock.Unlock()
		if !hadLock {
			_ = os.Remove(lockPath)
		}
		return nil, err
	}
	mgr := checkpoints.Manager{Root: out}
	infos, err := mgr.List()
	if err != nil {
		return refuse(err)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return refuse(fmt.Errorf("run directory: %w", err))
	}
	var foreign []string
	for _, e := range ents {
		if !isRunEntry(e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	switch {
	case len(infos) > 0 && !force:
		return refuse(fmt.Errorf("%s already holds a training run (newest checkpoint %s); continue it with: mqa train -resume %s, or pass -force to start a new run there (deleting its checkpoints and log)",
			out, filepath.Base(infos[len(infos)-1].Dir), out))
	case len(foreign) > 0 && !force:
		if len(foreign) > 3 {
			foreign = append(foreign[:3], fmt.Sprintf("and %d more", len(foreign)-3))
		}
		return refuse(fmt.Errorf("%s is not empty and not an mqa run directory (it holds %s); choose another -out, or pass -force to train there all the same (files training did not create are kept)",
			out, strings.Join(foreign, ", ")))
	}
	if err := clean(out, log); err != nil {
		return refuse(err)
	}
	for _, info := range infos {
		if err := mgr.Remove(info.Dir); err != nil {
			return refuse(fmt.Errorf("-force: removing the earlier run's checkpoint: %w", err))
		}
	}
	if err := os.Remove(filepath.Join(out, checkpoints.LogFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return refuse(fmt.Errorf("-force: removing the earlier run's log: %w", err))
	}
	return lock, nil
}

// clean removes what an interrupted run left in the run directory dir (see
// checkpoints.Manager.Clean) and says on log what it removed.
func clean(dir string, log io.Writer) error {
	removed, err := checkpoints.Manager{Root: dir}.Clean()
	if len(removed) > 0 {
		fmt.Fprintf(log, "mqa train: removed what an interrupted run left in %s: %s\n", dir, strings.Join(removed, ", "))
	}
	return err
}
