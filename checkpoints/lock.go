package checkpoints

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file in a run directory whose lock LockRun takes. It
// holds the pid of the process that last took the lock.
const LockFile = "mqa.lock"

// ErrLocked is wrapped by the error LockRun returns when another process
// holds the lock.
var ErrLocked = errors.New("run directory is in use")

// RunLock is the exclusive lock of one run directory, held by this process.
type RunLock struct {
	f *os.File
}

// LockRun creates dir if needed and takes the exclusive lock of its
// LockFile, so that at most one process writes the run directory. When
// another process holds the lock, the error wraps ErrLocked and names that
// process's pid. The lock is released by Unlock, or by the operating
// system when the process ends in any way, SIGKILL included. On systems
// without flock(2) the lock file is written but nothing is locked.
func LockRun(dir string) (*RunLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock run directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		holder := "unknown"
		if b, rerr := io.ReadAll(io.LimitReader(f, 32)); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = strconv.Itoa(pid)
			}
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%s is being written by another mqa process (pid %s); wait for it to end or stop it: %w", dir, holder, ErrLocked)
		}
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	return &RunLock{f: f}, nil
}

// Unlock releases the lock. The lock file stays, so that another process
// can take the lock of the same file.
func (l *RunLock) Unlock() error {
	return l.f.Close()
}
