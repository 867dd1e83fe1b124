package podman

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// hostPaths are the well-known places discovery and state checks look at.
// Tests point them into a temporary tree.
type hostPaths struct {
	storageConfs  []string // containers-storage configuration, first existing wins
	rootfulGraph  string   // default graph root
	rootfulRun    string   // default run root
	libpodTmp     string   // rootful libpod tmp dir (conmon exit files)
	passwd        string
	subuid        string
	homeParent    string // directory of home directories not in passwd (LDAP users)
	userRunParent string // /run/user, parent of rootless XDG_RUNTIME_DIRs
	tmp           string // fallback parent of rootless runtime dirs
	proc          string
	cgroup        string // cgroup filesystems' conventional mount point
	// cgroupFromMountinfo finds the cgroup mounts in proc/self/mountinfo
	// rather than assuming they sit below cgroup as laid out by systemd.
	cgroupFromMountinfo bool
}

func defaultHostPaths() hostPaths {
	return hostPaths{
		storageConfs:  []string{"/etc/containers/storage.conf", "/usr/share/containers/storage.conf"},
		rootfulGraph:  "/var/lib/containers/storage",
		rootfulRun:    "/run/containers/storage",
		libpodTmp:     "/run/libpod",
		passwd:        "/etc/passwd",
		subuid:        "/etc/subuid",
		homeParent:    "/home",
		userRunParent: "/run/user",
		tmp:           "/tmp",
		proc:          "/proc",
		cgroup:        "/sys/fs/cgroup",

		cgroupFromMountinfo: true,
	}
}

// storageRoot is one containers/storage tree: podman's rootful one, or a
// rootless user's.
type storageRoot struct {
	Graph string // graph root, e.g. /var/lib/containers/storage
	Run   string // run root, e.g. /run/containers/storage; "" if none exists
	Exits string // where conmon drops exit files; "" if unknown
	// Owner is the uid that owns a rootless tree (-1 for the rootful one);
	// processes claimed by its pidfiles must belong to that user.
	Owner int
	User  string
}

// storage is the containers of one storage driver within a root: the data
// directory holds containers.json, the run directory the pidfiles.
type storage struct {
	storageRoot
	DataName string // e.g. overlay-containers, below Graph
	RunName  string // below Run; the same name in every podman layout
}

func (s storage) dataDir() string { return filepath.Join(s.Graph, s.DataName) }
func (s storage) runDir() string {
	if s.Run == "" {
		return ""
	}
	return filepath.Join(s.Run, s.RunName)
}

// layout is what discovery found: the roots that exist (watched for a first
// driver directory appearing) and their driver directories.
type layout struct {
	roots    []storageRoot
	storages []storage
}

func (l layout) equal(o layout) bool {
	return slices.Equal(l.roots, o.roots) && slices.Equal(l.storages, o.storages)
}

// discover finds the rootful storage and every user's rootless storage.
func discover(p hostPaths, log *slog.Logger) layout {
	conf := readStorageConf(p.storageConfs, log)
	var roots []storageRoot
	seen := map[string]bool{}

	rootful := storageRoot{
		Graph: firstNonEmpty(conf["graphroot"], p.rootfulGraph),
		Run:   firstNonEmpty(conf["runroot"], p.rootfulRun),
		Exits: filepath.Join(p.libpodTmp, "exits"),
		Owner: -1,
	}
	if fi, err := os.Stat(rootful.Graph); err == nil && fi.IsDir() {
		if g, err := filepath.EvalSymlinks(rootful.Graph); err == nil {
			rootful.Graph = g
		}
		seen[rootful.Graph] = true
		roots = append(roots, rootful)
	}

	for _, u := range candidateUsers(p, log) {
		graph := filepath.Join(u.home, ".local/share/containers/storage")
		if rsp := conf["rootless_storage_path"]; rsp != "" {
			graph = os.Expand(rsp, func(k string) string {
				switch k {
				case "HOME":
					return u.home
				case "UID":
					return strconv.Itoa(u.uid)
				case "USER":
					return u.name
				}
				return ""
			})
		}
		resolved, ok := ownedDir(graph, u.uid, log)
		if !ok || seen[resolved] {
			continue
		}
		seen[resolved] = true
		r := storageRoot{Graph: resolved, Owner: u.uid, User: u.name}
		// Podman's rootless runtime dir is XDG_RUNTIME_DIR, normally
		// /run/user/UID, else /tmp/podman-run-UID.
		for _, rt := range []string{
			filepath.Join(p.userRunParent, strconv.Itoa(u.uid)),
			filepath.Join(p.tmp, "podman-run-"+strconv.Itoa(u.uid)),
		} {
			if run, ok := ownedDir(filepath.Join(rt, "containers"), u.uid, log); ok {
				r.Run = run
				r.Exits = filepath.Join(rt, "libpod", "tmp", "exits")
				break
			}
		}
		roots = append(roots, r)
	}

	var storages []storage
	for _, r := range roots {
		entries, err := os.ReadDir(r.Graph)
		if err != nil {
			log.Warn("podman: cannot read storage root", "dir", r.Graph, "err", err)
			continue
		}
		for _, e := range entries {
			// A driver directory counts before its containers.json exists:
			// podman creates the file right after, and the directory must
			// already be watched to see it appear.
			if !e.IsDir() || !strings.HasSuffix(e.Name(), "-containers") {
				continue
			}
			storages = append(storages, storage{storageRoot: r, DataName: e.Name(), RunName: e.Name()})
		}
	}
	return layout{roots: roots, storages: storages}
}

// ownedDir resolves path and reports whether it is a directory owned by uid.
// A rootless tree that resolves to someone else's files is not that user's
// storage, whatever its links say.
func ownedDir(path string, uid int, log *slog.Logger) (string, bool) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			log.Debug("podman: skipping storage", "dir", path, "err", err)
		}
		return "", false
	}
	fi, err := os.Stat(resolved)
	if err != nil || !fi.IsDir() {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != uid {
		log.Warn("podman: ignoring rootless storage not owned by its user", "dir", resolved, "uid", uid)
		return "", false
	}
	return resolved, true
}

type user struct {
	name string
	uid  int
	home string
}

// candidateUsers lists passwd entries with a home directory, plus home
// directories under homeParent that passwd does not know (directory users),
// attributed to the directory's owner.
func candidateUsers(p hostPaths, log *slog.Logger) []user {
	var users []user
	homes := map[string]bool{}
	if data, err := os.ReadFile(p.passwd); err != nil {
		log.Warn("podman: cannot read passwd", "file", p.passwd, "err", err)
	} else {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			f := strings.Split(line, ":")
			if len(f) < 7 {
				continue
			}
			uid, err := strconv.Atoi(f[2])
			if err != nil || uid < 0 || !filepath.IsAbs(f[5]) || f[5] == "/" {
				continue
			}
			users = append(users, user{name: f[0], uid: uid, home: filepath.Clean(f[5])})
			homes[filepath.Clean(f[5])] = true
		}
	}
	entries, _ := os.ReadDir(p.homeParent)
	for _, e := range entries {
		home := filepath.Join(p.homeParent, e.Name())
		if homes[home] || !e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			users = append(users, user{name: strconv.Itoa(int(st.Uid)), uid: int(st.Uid), home: home})
		}
	}
	return users
}

// readStorageConf returns the keys of the [storage] table of the first
// existing containers-storage.conf. Only flat string keys are needed, so a
// line-based reading of that TOML subset is enough.
func readStorageConf(paths []string, log *slog.Logger) map[string]string {
	out := map[string]string{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			log.Warn("podman: cannot read storage configuration", "file", path, "err", err)
			return out
		}
		table := ""
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			if line[0] == '[' {
				table = strings.TrimSpace(strings.Trim(line, "[]"))
				continue
			}
			if table != "storage" {
				continue
			}
			key, val, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			key = strings.TrimSpace(key)
			if v, ok := tomlString(strings.TrimSpace(val)); ok {
				out[key] = v
			}
		}
		return out
	}
	return out
}

// tomlString decodes a basic or literal TOML string followed by an optional
// comment. Escapes are not expected in paths and make the value unusable.
func tomlString(v string) (string, bool) {
	if len(v) < 2 || (v[0] != '"' && v[0] != '\'') {
		return "", false
	}
	end := strings.IndexByte(v[1:], v[0])
	if end < 0 {
		return "", false
	}
	s := v[1 : 1+end]
	if v[0] == '"' && strings.Contains(s, `\`) {
		return "", false
	}
	rest := strings.TrimSpace(v[2+end:])
	if rest != "" && rest[0] != '#' {
		return "", false
	}
	return s, true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
