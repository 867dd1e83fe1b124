package lxc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// errEscapes means a path under the LXC path resolved (through a symlink)
// to somewhere outside it. The daemon runs as root: it reads nothing there.
var errEscapes = errors.New("resolves outside the lxc path")

// openBeneath opens rel (relative to dir, whose path is dirPath) for
// reading, refusing any resolution that leaves dir. Symlinks that stay
// inside are followed, as LXC follows them.
func openBeneath(dir *os.File, dirPath, rel string) (*os.File, error) {
	how := unix.OpenHow{
		// O_NONBLOCK: a FIFO planted as "config" must not hang List.
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat2(int(dir.Fd()), rel, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), filepath.Join(dirPath, rel)), nil
		case errors.Is(err, unix.EXDEV):
			return nil, fmt.Errorf("%s: %w", rel, errEscapes)
		case errors.Is(err, unix.EAGAIN) && attempt < 3:
			continue // a concurrent rename; the kernel asks us to retry
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			// No openat2 (Linux < 5.6, or a seccomp filter refusing it).
			return openBeneathFallback(dirPath, rel)
		default:
			return nil, &os.PathError{Op: "openat2", Path: filepath.Join(dirPath, rel), Err: err}
		}
	}
}

// openBeneathFallback checks the resolved path, then opens it without
// following a final symlink. It is open to a rename race that openat2
// closes, which is why it is only the fallback.
func openBeneathFallback(dirPath, rel string) (*os.File, error) {
	root, err := filepath.EvalSymlinks(dirPath)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dirPath, rel))
	if err != nil {
		return nil, err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s: %w", rel, errEscapes)
	}
	return os.OpenFile(real, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
}
