// Package safefile reads files below a directory that someone other than
// rootd may control (a rootless user's container storage, a state
// directory named in the environment) without being led anywhere else.
//
// Every open resolves the path with openat2(2) RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS from the directory, so neither "..", nor an
// absolute or relative symlink, nor a /proc magic link can take it out;
// the last component is opened with O_NOFOLLOW (a symlink there is refused
// even when it points inside) and O_NONBLOCK (a FIFO planted there cannot
// hang the daemon); the opened file must be a regular file (fstat), and
// reads stop at a size limit. Where openat2 is missing (Linux before 5.6,
// or refused by a seccomp filter) the path is walked one component at a
// time with O_NOFOLLOW, which refuses every symlink.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrEscapes: the path leads outside the directory ("..", an absolute
	// path, a symlink or magic link pointing out).
	ErrEscapes = errors.New("path leads outside its directory")
	// ErrNotRegular: the file is a directory, FIFO, socket or device.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file holds more than the limit.
	ErrTooLarge = errors.New("file exceeds its size limit")
)

// Option changes how paths resolve.
type Option int

const (
	// NoSymlinks refuses symlinks in every component, not only the last,
	// even ones that stay inside the directory (RESOLVE_NO_SYMLINKS).
	NoSymlinks Option = 1 << iota
)

// forceFallback makes tests take the path without openat2.
var forceFallback bool

// ReadFile reads root/rel, at most max bytes of a regular file, as
// described in the package comment.
func ReadFile(root, rel string, max int64, opts ...Option) ([]byte, error) {
	f, err := Open(root, rel, opts...)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, max)
}

// ReadFileIn is ReadFile with the directory already open.
func ReadFileIn(dir *os.File, rel string, max int64, opts ...Option) ([]byte, error) {
	f, err := OpenIn(dir, rel, opts...)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f, max)
}

// Open opens root/rel for reading if it is a regular file, as described
// in the package comment. The file is in non-blocking mode.
func Open(root, rel string, opts ...Option) (*os.File, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return OpenIn(dir, rel, opts...)
}

// OpenIn is Open with the directory already open.
func OpenIn(dir *os.File, rel string, opts ...Option) (*os.File, error) {
	fd, err := openFD(dir, rel, flagsOf(opts), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), rel))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: f.Name(), Err: ErrNotRegular}
	}
	return f, nil
}

// Lstat is lstat(2) of root/rel: the last component is not followed, and
// the components before it resolve as for Open.
func Lstat(root, rel string, opts ...Option) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, err := os.Open(root)
	if err != nil {
		return st, err
	}
	defer dir.Close()
	parent, name := ".", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		parent, name = rel[:i], rel[i+1:]
	}
	if err := checkRel(rel); err != nil {
		return st, &os.PathError{Op: "lstat", Path: filepath.Join(root, rel), Err: err}
	}
	pfd, err := openFD(dir, parent, flagsOf(opts), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return st, err
	}
	defer unix.Close(pfd)
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: filepath.Join(root, rel), Err: err}
	}
	return st, nil
}

func flagsOf(opts []Option) Option {
	var o Option
	for _, x := range opts {
		o |= x
	}
	return o
}

// checkRel refuses paths that are absolute, empty, or hold "..": nothing
// rootd reads needs them, and the fallback could not contain them.
func checkRel(rel string) error {
	if rel == "" || rel[0] == '/' {
		return fmt.Errorf("%q: %w", rel, ErrEscapes)
	}
	for _, p := range strings.Split(rel, "/") {
		if p == ".." {
			return fmt.Errorf("%q: %w", rel, ErrEscapes)
		}
	}
	return nil
}

// openFD opens rel below dir with the given open flags (O_CLOEXEC and
// O_NOFOLLOW are added).
func openFD(dir *os.File, rel string, o Option, flags int) (int, error) {
	path := filepath.Join(dir.Name(), rel)
	if err := checkRel(rel); err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !forceFallback {
		how := unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		}
		if o&NoSymlinks != 0 {
			how.Resolve |= unix.RESOLVE_NO_SYMLINKS
		}
		for attempt := 0; ; attempt++ {
			fd, err := unix.Openat2(int(dir.Fd()), rel, &how)
			switch {
			case err == nil:
				return fd, nil
			case err == unix.EXDEV:
				return -1, &os.PathError{Op: "openat2", Path: path, Err: ErrEscapes}
			case err == unix.EAGAIN && attempt < 3:
				continue // a concurrent rename; the kernel asks us to retry
			case err == unix.ENOSYS || err == unix.EPERM:
				// No openat2: walk instead.
			default:
				return -1, &os.PathError{Op: "openat2", Path: path, Err: err}
			}
			break
		}
	}
	return openWalk(dir, rel, flags)
}

// openWalk opens rel one component at a time, each with O_NOFOLLOW, so no
// symlink is followed anywhere (stricter than openat2, which follows those
// that stay inside).
func openWalk(dir *os.File, rel string, flags int) (int, error) {
	path := filepath.Join(dir.Name(), rel)
	parts := strings.Split(rel, "/")
	cur, err := unix.Dup(int(dir.Fd()))
	if err != nil {
		return -1, &os.PathError{Op: "dup", Path: dir.Name(), Err: err}
	}
	for _, p := range parts[:len(parts)-1] {
		if p == "" || p == "." {
			continue
		}
		next, err := unix.Openat(cur, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		cur = next
	}
	last := parts[len(parts)-1]
	if last == "" {
		last = "."
	}
	fd, err := unix.Openat(cur, last, flags, 0)
	unix.Close(cur)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// readAll reads f up to max bytes; more is ErrTooLarge. The size fstat
// gives is checked first, but not trusted: the file may grow, and files
// such as cgroup.procs report 0.
func readAll(f *os.File, max int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes: %w (%d)", f.Name(), fi.Size(), ErrTooLarge, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w (%d)", f.Name(), ErrTooLarge, max)
	}
	return data, nil
}
