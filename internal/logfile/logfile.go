// Package logfile is rootd's log destination: standard error or a file
// opened so that whoever can write the log's directory (PCP's account owns
// $PCP_LOG_DIR/pmcd) cannot make root write somewhere else, reopened on
// request for logrotate, and whose failed writes are counted instead of
// being fatal or blocking the daemon.
package logfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrUnsafe means the log path names something rootd must not write to.
var ErrUnsafe = errors.New("unsafe log file")

// ErrNoFile is what Reopen returns when logging goes to standard error.
var ErrNoFile = errors.New("logging to standard error, nothing to reopen")

// Log is an io.Writer for slog. Writes are serialized; one that fails is
// dropped and counted, never retried.
type Log struct {
	path    string
	mu      sync.Mutex
	w       io.Writer
	f       *os.File // nil when w is stderr
	dropped atomic.Uint64
}

// Open returns a Log writing to path, appended to, or to stderr when path is
// "" or "-".
func Open(path string, stderr io.Writer) (*Log, error) {
	if path == "" || path == "-" {
		return &Log{w: stderr}, nil
	}
	f, err := openSafe(path)
	if err != nil {
		return nil, err
	}
	return &Log{path: path, w: f, f: f}, nil
}

// Path is the log file's path, "" for standard error.
func (l *Log) Path() string { return l.path }

// Write writes p whole or counts it as dropped.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.w.Write(p)
	l.mu.Unlock()
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		l.dropped.Add(1)
	}
	return n, err
}

// Dropped is the number of writes that failed so far.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Reopen opens the log path again (after logrotate moved the file away) and
// switches to it. If the path is now unsafe, or cannot be opened, logging
// stays on the file already open and the error says why.
func (l *Log) Reopen() error {
	if l.path == "" {
		return ErrNoFile
	}
	f, err := openSafe(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.w, l.f = f, f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the log file (not standard error).
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	l.w = io.Discard
	return l.f.Close()
}

// openSafe opens path for appending without following a symlink anywhere in
// it (openat2 RESOLVE_NO_SYMLINKS; on kernels before 5.6, O_NOFOLLOW on the
// last component), and refuses what it opened unless it is a regular file
// owned by root (or rootd's own user) with a single link. O_NONBLOCK keeps
// a FIFO planted at the path from blocking the open; it is cleared after.
func openSafe(path string) (*os.File, error) {
	flags := unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	how := unix.OpenHow{Flags: uint64(flags), Mode: 0o600, Resolve: unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
	if errors.Is(err, unix.ENOSYS) {
		fd, err = unix.Open(path, flags, 0o600)
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("log file %s: a symbolic link is in the path: %w", path, ErrUnsafe)
	}
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	switch {
	case err != nil:
		err = fmt.Errorf("log file %s: %w", path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("log file %s is not a regular file (mode %#o): %w", path, st.Mode, ErrUnsafe)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("log file %s is owned by uid %d, not root: %w", path, st.Uid, ErrUnsafe)
	case st.Nlink != 1:
		err = fmt.Errorf("log file %s has %d links: %w", path, st.Nlink, ErrUnsafe)
	default:
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
