package rootd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrInUse means another server already answers on the socket path.
var ErrInUse = errors.New("another server is listening")

// ListenOptions says who may open the socket file.
type ListenOptions struct {
	// Group, if it exists on the host, gets read-write access to the
	// socket (mode 0660); otherwise the socket is root's alone (0600).
	// A number is a gid and needs no /etc/group (a scratch container).
	Group string
}

// Listen creates the root socket at path. The parent directory is created
// with mode 0700 if missing. A stale socket left by a dead server is
// replaced, but a live one is never stolen, and a path that is not a socket
// is never removed. The socket is created with a restrictive umask, so it is
// never reachable with looser permissions, even for a moment.
func Listen(path string, opts ListenOptions) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
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
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if opts.Group != "" {
		if gid, ok := lookupGID(opts.Group); ok {
			// Without CAP_CHOWN (a container's capabilities) this fails:
			// say so rather than leave the socket root's alone.
			err := os.Chown(path, 0, gid)
			if err == nil {
				err = os.Chmod(path, 0o660)
			}
			if err != nil {
				ln.Close()
				return nil, fmt.Errorf("giving group %s access to %s: %w", opts.Group, path, err)
			}
		}
	}
	// Go already opens the listener close-on-exec, so agents never inherit it.
	return ln, nil
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
