package podman

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Size limits for the files read from a storage tree. A rootless user owns
// their storage, so nothing in it may make the root daemon read without end.
const (
	maxContainersJSON = 64 << 20
	maxConfigJSON     = 4 << 20
	maxPidFile        = 64
)

var errNotRegular = errors.New("not a regular file")

// readBeneath reads root/rel without following any symbolic link at or
// below root, and only if the result is a regular file of at most max bytes.
//
// A rootless user owns everything below their storage root and could plant
// a link to /etc/shadow named containers.json; walking the path one
// component at a time with O_NOFOLLOW keeps rootd inside the tree it was
// asked to read. root itself was resolved and checked at discovery.
func readBeneath(root, rel string, max int64) ([]byte, error) {
	dir, name, err := openParentBeneath(root, rel)
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO planted under the name must not hang the daemon.
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	unix.Close(dir)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root + "/" + rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), root+"/"+rel)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: f.Name(), Err: errNotRegular}
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("read %s: %d bytes exceeds the limit of %d", f.Name(), fi.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read %s: exceeds the limit of %d bytes", f.Name(), max)
	}
	return data, nil
}

// statBeneath is lstat of root/rel; like readBeneath it refuses symbolic
// links below root.
func statBeneath(root, rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, name, err := openParentBeneath(root, rel)
	if err != nil {
		return st, err
	}
	defer unix.Close(dir)
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "stat", Path: root + "/" + rel, Err: err}
	}
	return st, nil
}

// openParentBeneath opens the directory that holds root/rel, one component
// at a time with O_NOFOLLOW, and returns its descriptor and the last
// component of rel.
func openParentBeneath(root, rel string) (dir int, name string, err error) {
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return -1, "", fmt.Errorf("read %s/%s: invalid path component %q", root, rel, p)
		}
	}
	dir, err = unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "open", Path: root, Err: err}
	}
	for _, p := range parts[:len(parts)-1] {
		next, err := unix.Openat(dir, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dir)
		if err != nil {
			return -1, "", &os.PathError{Op: "open", Path: root + "/" + rel, Err: err}
		}
		dir = next
	}
	return dir, parts[len(parts)-1], nil
}
