package checkpoints

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// OpenRegular opens path for reading when it is a regular file (symbolic
// links are followed). A directory, named pipe (FIFO), device or socket is
// refused with an error naming path and what it is, before anything is
// read from it: opening does not wait for a FIFO's writer, so such input
// cannot hang a command or stream without end.
func OpenRegular(path string) (*os.File, error) {
	// O_NONBLOCK makes opening a FIFO return at once; regular files ignore it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is %s, not a regular file", path, describeMode(st.Mode()))
	}
	return f, nil
}

// describeMode names the kind of a file that is not regular.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	}
	return "a special file"
}
