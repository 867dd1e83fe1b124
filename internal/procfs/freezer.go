package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
)

// ErrNoFreezer says that a process is in neither a v1 freezer hierarchy nor
// cgroup v2 among the given mounts, so whether it is frozen is unknown.
var ErrNoFreezer = errors.New("no freezer or cgroup2 hierarchy found")

// FreezerDirs returns the directories of a process's cgroups (its lines
// from /proc/PID/cgroup) in the v1 freezer hierarchy and in cgroup v2,
// "" for each that is not mounted or not below the mount's root.
func FreezerDirs(mounts []CgroupMount, lines []CgroupLine) (v1Freezer, v2 string) {
	for _, l := range lines {
		for _, m := range mounts {
			switch {
			case l.Unified() && m.V2:
				if v2 == "" {
					v2 = m.Dir(l.Path)
				}
			case slices.Contains(l.Controllers, "freezer") && slices.Contains(m.Controllers, "freezer"):
				if v1Freezer == "" {
					v1Freezer = m.Dir(l.Path)
				}
			}
		}
	}
	return v1Freezer, v2
}

// Frozen reports whether the cgroup freezer holds a process, given its
// lines from /proc/PID/cgroup: its v1 freezer cgroup is FROZEN or FREEZING,
// or its v2 cgroup is frozen (or, where cgroup.events cannot be read, asked
// to freeze). On a hybrid host runc and LXC freeze through v1 and a v2
// freezer may be used too, so both are checked. A cgroup file that cannot
// be read counts as not frozen; ErrNoFreezer says neither hierarchy is
// there to look at.
func Frozen(mounts []CgroupMount, lines []CgroupLine) (bool, error) {
	v1, v2 := FreezerDirs(mounts, lines)
	if v1 == "" && v2 == "" {
		return false, ErrNoFreezer
	}
	if v1 != "" {
		if st, err := os.ReadFile(filepath.Join(v1, "freezer.state")); err == nil && freezerStateFrozen(st) {
			return true, nil
		}
	}
	if v2 != "" {
		if ev, err := os.ReadFile(filepath.Join(v2, "cgroup.events")); err == nil {
			if cgroupEventsFrozen(ev) {
				return true, nil
			}
		} else if fr, err := os.ReadFile(filepath.Join(v2, "cgroup.freeze")); err == nil && string(bytes.TrimSpace(fr)) == "1" {
			return true, nil
		}
	}
	return false, nil
}

func freezerStateFrozen(data []byte) bool {
	s := string(bytes.TrimSpace(data))
	return s == "FROZEN" || s == "FREEZING"
}

func cgroupEventsFrozen(data []byte) bool {
	for line := range bytes.Lines(data) {
		if string(bytes.TrimSpace(line)) == "frozen 1" {
			return true
		}
	}
	return false
}
