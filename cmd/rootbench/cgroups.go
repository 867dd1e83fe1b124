package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rootd-project/rootd/internal/procfs"
)

// rootd answers CGROUPNAME with, and verifies every engine-reported PID
// against, one cgroup hierarchy: the memory controller's on cgroup v1 and
// hybrid hosts, else name=systemd, else the unified one
// (procfs.ParseCgroup). The benchmark puts the processes it asks about in
// cgroups of that hierarchy, named as Docker names its containers' cgroups,
// so that rootd's answers pass verification exactly as a real container's
// do (docs/performance.md, "Method").

// Hierarchy kinds, in the order procfs.ParseCgroup prefers them.
const (
	hierMemory  = "memory"
	hierSystemd = "name=systemd"
	hierUnified = "unified"
)

// pickHierarchy returns which hierarchy procfs.ParseCgroup reads a
// process's path from, given that process's /proc/PID/cgroup lines.
func pickHierarchy(lines []procfs.CgroupLine) (string, error) {
	have := map[string]bool{}
	for _, l := range lines {
		if l.Unified() {
			have[hierUnified] = true
			continue
		}
		for _, c := range l.Controllers {
			have[c] = true
		}
	}
	for _, h := range []string{hierMemory, hierSystemd, hierUnified} {
		if have[h] {
			return h, nil
		}
	}
	return "", errors.New("no memory, name=systemd or unified cgroup hierarchy")
}

// findMount returns where the hierarchy kind is mounted, from the contents
// of a /proc/PID/mountinfo file. Only a mount of the hierarchy's root will
// do: the paths in /proc/PID/cgroup are relative to it.
func findMount(mountinfo []byte, kind string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || f[3] != "/" {
			continue
		}
		switch fstype, opts := g[0], strings.Split(g[2], ","); {
		case kind == hierUnified && fstype == "cgroup2",
			kind != hierUnified && fstype == "cgroup" && slices.Contains(opts, kind):
			return unescapeMount(f[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("the %s cgroup hierarchy is not mounted (at its root)", kind)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// CgroupTree is the cgroups one run creates, all below one directory of
// the hierarchy rootd reads: MOUNT/bench-rootbench-PID.
type CgroupTree struct {
	Mount string // where the hierarchy is mounted
	Base  string // the run's cgroup, relative to Mount
}

// NewCgroupTree creates the run's cgroup in the hierarchy rootd reads.
func NewCgroupTree() (*CgroupTree, error) {
	lines, err := procfs.ReadCgroupLines("/proc", os.Getpid())
	if err != nil {
		return nil, err
	}
	kind, err := pickHierarchy(lines)
	if err != nil {
		return nil, err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mount, err := findMount(mi, kind)
	if err != nil {
		return nil, err
	}
	t := &CgroupTree{Mount: mount, Base: fmt.Sprintf("bench-rootbench-%d", os.Getpid())}
	if err := os.Mkdir(filepath.Join(mount, t.Base), 0o755); err != nil {
		return nil, fmt.Errorf("create the benchmark's cgroup: %w", err)
	}
	return t, nil
}

// Place moves process pid into the cgroup rel (below the run's cgroup),
// creating it, and returns that cgroup's path as /proc/PID/cgroup shows it,
// without the leading slash: what rootd answers CGROUPNAME with.
func (t *CgroupTree) Place(rel string, pid int) (string, error) {
	path := filepath.Join(t.Base, rel)
	dir := filepath.Join(t.Mount, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return "", fmt.Errorf("move pid %d into cgroup %s: %w", pid, dir, err)
	}
	return path, nil
}

// RemoveUnder removes the cgroup rel and every cgroup below it, deepest
// first. Their processes must have exited (and been reaped) before.
func (t *CgroupTree) RemoveUnder(rel string) error {
	top := filepath.Join(t.Mount, t.Base, rel)
	var dirs []string
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Remove removes the run's cgroup and everything below it.
func (t *CgroupTree) Remove() error { return t.RemoveUnder("") }
