package podman

import (
	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/internal/safefile"
)

// Size limits for the files read from a storage tree. A rootless user owns
// their storage, so nothing in it may make the root daemon read without end.
const (
	maxContainersJSON = 64 << 20
	maxConfigJSON     = 4 << 20
	maxPidFile        = 64
)

// readBeneath reads root/rel only if it is a regular file of at most max
// bytes reached without any symbolic link below root (internal/safefile
// with NoSymlinks).
//
// A rootless user owns everything below their storage root and could plant
// a link to /etc/shadow named containers.json. root itself was resolved
// and checked at discovery.
func readBeneath(root, rel string, max int64) ([]byte, error) {
	return safefile.ReadFile(root, rel, max, safefile.NoSymlinks)
}

// statBeneath is lstat of root/rel; like readBeneath it refuses symbolic
// links below root.
func statBeneath(root, rel string) (unix.Stat_t, error) {
	return safefile.Lstat(root, rel, safefile.NoSymlinks)
}
