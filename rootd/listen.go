package rootd

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInUse means another server already answers on the socket path.
var ErrInUse = errors.New("another server is listening")

// ErrUnsafeDir means someone other than root could replace the socket or
// a directory above it, so rootd refuses to bind there.
var ErrUnsafeDir = errors.New("directory is not root's alone")

// ErrSocketLost means the socket path no longer names the socket this
// process bound: someone (pmdaroot, an operator, another rootd) removed or
// replaced it. The path is then left alone.
var ErrSocketLost = errors.New("socket path no longer ours")

// ListenOptions says who may open the socket file.
type ListenOptions struct {
	// Group, if it exists on the host, gets read-write access to the
	// socket (mode 0660); otherwise the socket is root's alone (0600).
	// A number is a gid and needs no /etc/group (a scratch container).
	Group string
}

// Socket is the bound root socket. It remembers the device and inode of the
// file it created, so that Close removes that file and nothing else.
type Socket struct {
	*net.UnixListener
	// Path is where the socket was bound: the requested path with the
	// symbolic links of its directory resolved.
	Path string

	dev, ino  uint64
	closeOnce sync.Once
	closeErr  error
}

// testHookAfterBind, when set by a test, runs between bind and the
// ownership change: the window in which the old code followed a symlink.
var testHookAfterBind func(path string)

// Listen creates the root socket at path.
//
// The socket's directory and every directory above it must be owned by
// root (or by the user rootd runs as) and not writable by group or others,
// unless sticky (like /tmp): anyone else able to write there could swap the
// socket or a directory for a symlink while rootd sets its owner. Missing
// directories are created with mode 0700. A stale socket left by a dead
// server is replaced, but a live one is never stolen, and a path that is not
// a socket is never removed. The socket is born with its final mode (under
// a restrictive umask), so it is never reachable with looser permissions,
// and its group is set through a descriptor of the very file bound, never
// by following the path.
func Listen(path string, opts ListenOptions) (*Socket, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("socket path %s: %w", path, err)
	}
	dir, err := secureDir(filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	path = filepath.Join(dir, filepath.Base(abs))
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("probing existing socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	gid := -1
	if opts.Group != "" {
		// A name, or a number for hosts (and scratch images) without the
		// group in /etc/group. The group is applied in claim, and failing
		// to apply it (no CAP_CHOWN) is an error, never a root-only socket.
		if g, ok := lookupGID(opts.Group); ok {
			gid = g
		}
	}
	// bind(2) creates the file with mode 0777 &^ umask: 0600 or, when a
	// group will get access, 0660 while the group is still root's. No chmod
	// is needed afterwards, and Linux has no chmod that refuses symlinks.
	mask := 0o177
	if gid >= 0 {
		mask = 0o117
	}
	old := syscall.Umask(mask)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("binding %s: %w", path, err)
	}
	// Go would unlink the path on Close whatever it names by then; Close
	// below removes it only while it is still this socket.
	ln.SetUnlinkOnClose(false)
	s := &Socket{UnixListener: ln, Path: path}
	if testHookAfterBind != nil {
		testHookAfterBind(path)
	}
	if err := s.claim(gid); err != nil {
		ln.Close()
		return nil, err
	}
	// Go already opens the listener close-on-exec, so agents never inherit it.
	return s, nil
}

// claim records the identity of the file just bound and, if gid >= 0, gives
// it to that group. It works on an O_PATH descriptor opened without
// following symlinks, so the checks and the chown apply to one and the same
// inode: a symlink or another user's file put in place of the socket is
// refused, never changed. (fchown on the listening socket's own descriptor
// would not do: it changes the socket's inode in sockfs, not the file
// connect(2) checks.)
func (s *Socket) claim(gid int) error {
	fd, err := unix.Open(s.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the socket just bound at %s: %w", s.Path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat of %s: %w", s.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || !trustedUID(st.Uid) {
		return fmt.Errorf("%s was replaced right after bind (mode %#o, uid %d): %w", s.Path, st.Mode, st.Uid, ErrSocketLost)
	}
	s.dev, s.ino = st.Dev, st.Ino
	if gid >= 0 {
		if err := unix.Fchownat(fd, "", 0, gid, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("giving group %d access to %s: %w", gid, s.Path, err)
		}
	}
	return nil
}

// Close stops listening and removes the socket file if the path still names
// the socket Listen bound (same device and inode). If it does not, the path
// is left alone and the error wraps ErrSocketLost. Close may be called more
// than once; later calls return the first result.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() {
		err := s.UnixListener.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil // Serve closes the listener to stop accepting
		}
		s.closeErr = errors.Join(err, s.remove())
	})
	return s.closeErr
}

// remove unlinks the socket file if it is still ours. Between the Lstat and
// the unlink only a writer of the directory could swap the file, and
// Listen made sure that is root alone.
func (s *Socket) remove() error {
	fi, err := os.Lstat(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is gone: %w", s.Path, ErrSocketLost)
	}
	if err != nil {
		return fmt.Errorf("checking socket %s before removal: %w", s.Path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Dev != s.dev || st.Ino != s.ino {
		return fmt.Errorf("%s is now another file: %w", s.Path, ErrSocketLost)
	}
	if err := os.Remove(s.Path); err != nil {
		return fmt.Errorf("removing socket: %w", err)
	}
	return nil
}

// trustedUID reports whether a file owned by uid is safe for rootd to rely
// on: root's, or the account rootd itself runs as.
func trustedUID(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// secureDir makes sure the directory dir exists and that nobody but root
// can change it or any directory above it, and returns it with symlinks
// resolved: the socket is bound in the directory that was checked, whatever
// a symlink on the way says later. Missing directories are created 0700.
func secureDir(dir string) (string, error) {
	var missing []string
	existing := dir
	for {
		_, err := os.Lstat(existing)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || existing == filepath.Dir(existing) {
			return "", fmt.Errorf("socket directory %s: %w", dir, err)
		}
		missing = append([]string{filepath.Base(existing)}, missing...)
		existing = filepath.Dir(existing)
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("socket directory %s: %w", dir, err)
	}
	for d := real; ; d = filepath.Dir(d) {
		if err := checkSocketDir(d); err != nil {
			return "", err
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, m := range missing {
		real = filepath.Join(real, m)
		if err := os.Mkdir(real, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("creating socket directory: %w", err)
		}
		// Lstat again: in a sticky parent someone else may have been first.
		if err := checkSocketDir(real); err != nil {
			return "", err
		}
	}
	return real, nil
}

// checkSocketDir refuses a directory that anyone but root (or rootd's own user)
// could write: one owned by another user, or writable by group or others
// without the sticky bit. A root-owned sticky directory such as /tmp is
// accepted: there nobody may rename or remove root's entries.
func checkSocketDir(d string) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (%v): %w", d, fi.Mode().Type(), ErrUnsafeDir)
	case !ok:
		return fmt.Errorf("%s: no ownership information: %w", d, ErrUnsafeDir)
	case !trustedUID(st.Uid):
		return fmt.Errorf("%s is owned by uid %d: %w", d, st.Uid, ErrUnsafeDir)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
		return fmt.Errorf("%s is writable by group or others (mode %v): %w", d, fi.Mode().Perm(), ErrUnsafeDir)
	}
	return nil
}

// lookupGID resolves a group name, or takes a number as the gid itself.
func lookupGID(group string) (int, bool) {
	if g, err := user.LookupGroup(group); err == nil {
		gid, err := strconv.Atoi(g.Gid)
		return gid, err == nil
	}
	gid, err := strconv.ParseUint(group, 10, 32)
	return int(gid), err == nil
}
