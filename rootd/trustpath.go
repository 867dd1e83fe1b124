package rootd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUntrusted is returned for a path that a user other than root could
// change: some component of it, or a symbolic link on the way, is not
// owned by root, or is writable by group or others (a root-owned sticky
// directory such as /tmp excepted: there nobody but root can rename or
// remove a root-owned entry), or lives on a FUSE file system, whose owner
// can report any owner and serve any content.
var ErrUntrusted = errors.New("path could be changed by a user other than root")

// fuseSuperMagic is FUSE's statfs f_type.
const fuseSuperMagic = 0x65735546

// maxSymlinks is the kernel's limit on links followed in one lookup.
const maxSymlinks = 40

// trusted is a file whose every path component only root can change.
type trusted struct {
	// Path is the file's canonical path: absolute, with no symbolic
	// links, "." or ".." in it. Since only root can change any directory
	// on it, executing Path runs the file that was checked.
	Path string
	Stat unix.Stat_t
}

// TrustedFile returns the canonical path of the regular file path names,
// once it has checked, as for the programs rootd starts (resolveTrusted),
// that only root can change it: the file, every directory on the way to it
// and every symbolic link followed (and the directory holding it) are owned
// by root and not writable by group or others (a root-owned sticky
// directory such as /tmp excepted), and none is on FUSE. Reading the
// canonical path then reads the file that was checked. rootd reads its
// configuration file, which can grant root-equivalent access, this way. A
// relative path is taken from the working directory. Errors wrap
// ErrUntrusted, or the error of the lookup (fs.ErrNotExist for a missing
// component).
func TrustedFile(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	t, err := resolveTrusted(abs, false)
	if err != nil {
		return "", err
	}
	return t.Path, nil
}

// resolveTrusted walks path one component at a time from "/", the way the
// kernel does, without following anything it has not checked: each
// directory, each symbolic link (and the directory holding it) and the file
// itself must be owned by root and not writable by anyone else. Every
// component is opened with O_PATH|O_NOFOLLOW relative to the directory
// already checked, so a component swapped during the walk is either seen
// (and judged) or not used. wantExec also requires an executable regular
// file; otherwise any regular file will do.
func resolveTrusted(path string, wantExec bool) (trusted, error) {
	if !filepath.IsAbs(path) {
		return trusted{}, fmt.Errorf("%w: %q is not an absolute path", ErrUntrusted, path)
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return trusted{}, fmt.Errorf("open /: %w", err)
	}
	// dirs holds the open directories from "/" down; canon their names.
	dirs := []int{root}
	var canon []string
	defer func() {
		for _, fd := range dirs {
			unix.Close(fd)
		}
	}()
	var st unix.Stat_t
	if err := checkComponent(root, "/", &st); err != nil {
		return trusted{}, err
	}
	if err := checkDir("/", &st); err != nil {
		return trusted{}, err
	}
	pending := splitPath(path)
	links := 0
	for len(pending) > 0 {
		name := pending[0]
		pending = pending[1:]
		switch name {
		case ".":
			continue
		case "..":
			if len(dirs) > 1 {
				unix.Close(dirs[len(dirs)-1])
				dirs = dirs[:len(dirs)-1]
				canon = canon[:len(canon)-1]
			}
			continue
		}
		where := "/" + strings.Join(append(canon[:len(canon):len(canon)], name), "/")
		fd, err := unix.Openat(dirs[len(dirs)-1], name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return trusted{}, fmt.Errorf("%s: %w", where, err)
		}
		if err := checkComponent(fd, where, &st); err != nil {
			unix.Close(fd)
			return trusted{}, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			links++
			if links > maxSymlinks {
				unix.Close(fd)
				return trusted{}, fmt.Errorf("%s: %w", path, unix.ELOOP)
			}
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err != nil {
				return trusted{}, fmt.Errorf("%s: %w", where, err)
			}
			if strings.HasPrefix(target, "/") {
				for _, d := range dirs[1:] {
					unix.Close(d)
				}
				dirs, canon = dirs[:1], nil
			}
			pending = append(splitPath(target), pending...)
		case unix.S_IFDIR:
			if err := checkDir(where, &st); err != nil {
				unix.Close(fd)
				return trusted{}, err
			}
			dirs = append(dirs, fd)
			canon = append(canon, name)
		default:
			unix.Close(fd)
			if len(pending) > 0 {
				return trusted{}, fmt.Errorf("%s: %w", where, unix.ENOTDIR)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				return trusted{}, fmt.Errorf("%s: not a regular file: %w", where, unix.EACCES)
			}
			if st.Mode&0o022 != 0 {
				return trusted{}, fmt.Errorf("%w: %s is writable by group or others", ErrUntrusted, where)
			}
			if wantExec && st.Mode&0o111 == 0 {
				return trusted{}, fmt.Errorf("%s: %w", where, unix.EACCES)
			}
			return trusted{Path: where, Stat: st}, nil
		}
	}
	return trusted{}, fmt.Errorf("%s: is a directory: %w", path, unix.EISDIR)
}

// checkComponent stats fd (never following it) and requires root to own it
// and it not to live on FUSE.
func checkComponent(fd int, where string, st *unix.Stat_t) error {
	if err := unix.Fstat(fd, st); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if st.Uid != 0 {
		return fmt.Errorf("%w: %s is owned by uid %d", ErrUntrusted, where, st.Uid)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if fs.Type == fuseSuperMagic {
		return fmt.Errorf("%w: %s is on a FUSE file system", ErrUntrusted, where)
	}
	return nil
}

func checkDir(where string, st *unix.Stat_t) error {
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("%w: directory %s is writable by group or others", ErrUntrusted, where)
	}
	return nil
}

func readlinkFd(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	if n == len(buf) {
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// interpreterOf returns the interpreter a "#!" script names, or "" for any
// other file. It reads the file at its canonical path, which only root can
// change.
func interpreterOf(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 256) // the kernel reads at most 256 bytes of "#!" line
	n, _ := f.Read(buf)
	line := buf[:n]
	if len(line) < 2 || line[0] != '#' || line[1] != '!' {
		return "", nil
	}
	line = line[2:]
	if i := strings.IndexByte(string(line), '\n'); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return "", fmt.Errorf("%s: empty #! line: %w", path, unix.ENOEXEC)
	}
	return fields[0], nil
}
