// Package podman lists Podman containers from containers/storage's files.
//
// Podman has no daemon to ask, so the engine reads what podman leaves on
// disk, as PCP's pmdaroot does: containers.json (IDs and names) under each
// storage driver's data directory, and the runtime's pidfile under the run
// directory. Unlike the reference it finds the rootful and every rootless
// storage with any driver, believes a pidfile only while its process is
// provably the container's, tells paused from running by the cgroup
// freezer, and watches the trees with inotify instead of re-reading them
// on every request.
package podman

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/rootd-project/rootd/engine"
)

// Name is the engine's registered name.
const Name = "podman"

// Labels this engine sets. Podman keeps user labels and pod names in its
// libpod database only; what the storage files tell is the pod's ID (from
// the cgroup path), its infra container, and the infra container's
// hostname, which podman sets to the pod's name unless told otherwise.
const (
	LabelPodID    = "io.podman.pod.id"
	LabelPodName  = "io.podman.pod.name"
	LabelPodInfra = "io.podman.pod.infra"
	LabelUser     = "io.podman.rootless.user"
	LabelImage    = "io.podman.image"
)

// Environment variables honoured as PCP's pmdaroot does.
const (
	EnvDataDir   = "PCP_PODMAN_DATADIR"
	EnvRunDir    = "PCP_PODMAN_RUNDIR"
	EnvCgroupDir = "PCP_CGROUP_DIR"
)

func init() {
	engine.Register(engine.Driver{
		Name:       Name,
		Summary:    "Podman containers, rootful and rootless, from containers/storage files",
		Precedence: engine.PrecedenceRuntime,
		Configure: func(fs *flag.FlagSet) engine.OpenFunc {
			dataDir := fs.String("podman-datadir", "",
				"Podman containers.json directory, e.g. /var/lib/containers/storage/overlay-containers (default $"+EnvDataDir+", else discover rootful and rootless storage)")
			runDir := fs.String("podman-rundir", "",
				"Podman run directory holding <id>/userdata/pidfile (default $"+EnvRunDir+", else the run directory matching the data directory)")
			return func(env engine.Env) (engine.Engine, error) {
				return Open(env, Options{DataDir: *dataDir, RunDir: *runDir})
			}
		},
	})
}

// Options are the engine's settings; empty fields take their environment
// variable, then discovery.
type Options struct {
	DataDir string
	RunDir  string
}

// Engine is the Podman engine. It is safe for concurrent use.
type Engine struct {
	log   *slog.Logger
	paths hostPaths
	// fixed, when set, is the one storage named by flags or environment;
	// otherwise storages are discovered on every List.
	fixed *storage

	mu       sync.Mutex
	lastGood map[string][]storedContainer // by data directory
	configs  map[string]cachedConfig      // by data directory + "/" + ID
}

var _ engine.Watcher = (*Engine)(nil)

// Open returns the engine for env and opts. Naming only one of the two
// directories explicitly uses the reference's default for the other.
func Open(env engine.Env, opts Options) (*Engine, error) {
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	paths := defaultHostPaths()
	if d := getenv(EnvCgroupDir); d != "" {
		paths.cgroup, paths.cgroupFromMountinfo = d, false
	}
	dataDir := firstNonEmpty(opts.DataDir, getenv(EnvDataDir))
	runDir := firstNonEmpty(opts.RunDir, getenv(EnvRunDir))
	var fixed *storage
	if dataDir != "" || runDir != "" {
		dataDir = firstNonEmpty(dataDir, "/var/lib/containers/storage/overlay-containers")
		runDir = firstNonEmpty(runDir, filepath.Join("/run/containers/storage", filepath.Base(dataDir)))
		for _, d := range []string{dataDir, runDir} {
			if !filepath.IsAbs(d) {
				return nil, fmt.Errorf("podman directory %q is not an absolute path", d)
			}
		}
		dataDir, runDir = filepath.Clean(dataDir), filepath.Clean(runDir)
		fixed = &storage{
			storageRoot: storageRoot{
				Graph: filepath.Dir(dataDir),
				Run:   filepath.Dir(runDir),
				Exits: filepath.Join(paths.libpodTmp, "exits"),
				Owner: -1,
			},
			DataName: filepath.Base(dataDir),
			RunName:  filepath.Base(runDir),
		}
	}
	return newEngine(log, paths, fixed), nil
}

func newEngine(log *slog.Logger, paths hostPaths, fixed *storage) *Engine {
	return &Engine{
		log:      log,
		paths:    paths,
		fixed:    fixed,
		lastGood: map[string][]storedContainer{},
		configs:  map[string]cachedConfig{},
	}
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

func (e *Engine) layout() layout {
	if e.fixed != nil {
		if fi, err := os.Stat(e.fixed.dataDir()); err != nil || !fi.IsDir() {
			return layout{}
		}
		return layout{roots: []storageRoot{e.fixed.storageRoot}, storages: []storage{*e.fixed}}
	}
	return discover(e.paths, e.log)
}

// List implements engine.Engine.
func (e *Engine) List(ctx context.Context) ([]engine.Container, error) {
	l := e.layout()
	if len(l.roots) == 0 {
		if e.fixed != nil {
			return nil, fmt.Errorf("podman data directory %s: %w", e.fixed.dataDir(), engine.ErrUnavailable)
		}
		return nil, fmt.Errorf("no podman storage on this host: %w", engine.ErrUnavailable)
	}
	var out []engine.Container
	seen := map[string]string{}
	for _, s := range l.storages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		recs, err := e.readContainers(s)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.log.Warn("podman: cannot read containers.json", "dir", s.dataDir(), "err", err)
		}
		cfgs := make([]cachedConfig, len(recs))
		sandboxes := map[string]bool{}
		for i, r := range recs {
			cfgs[i] = e.config(s, r.ID)
			if cfgs[i].sandbox != "" {
				sandboxes[cfgs[i].sandbox] = true
			}
		}
		isInfra := make([]bool, len(recs))
		infraByPod := map[string]cachedConfig{}
		for i, r := range recs {
			isInfra[i] = cfgs[i].infra(r, sandboxes[r.ID])
			if isInfra[i] {
				infraByPod[cfgs[i].podID] = cfgs[i]
			}
		}
		for i, r := range recs {
			if prev, dup := seen[r.ID]; dup {
				e.log.Warn("podman: container ID listed by two storages, keeping the first", "id", r.ID, "first", prev, "second", s.dataDir())
				continue
			}
			seen[r.ID] = s.dataDir()
			c := engine.Container{Engine: Name, ID: r.ID, State: engine.StateStopped, Labels: map[string]string{}, Cgroups: cgroupMarks(r.ID)}
			for _, n := range r.Names {
				if n = strings.TrimPrefix(n, "/"); n != "" {
					c.Names = append(c.Names, n)
				}
			}
			if img := r.imageName(); img != "" {
				c.Labels[LabelImage] = img
			}
			if s.User != "" {
				c.Labels[LabelUser] = s.User
			}
			cfg := cfgs[i]
			if cfg.podID != "" {
				c.Labels[LabelPodID] = cfg.podID
				if isInfra[i] {
					c.Labels[LabelPodInfra] = "true"
				}
				if infra, ok := infraByPod[cfg.podID]; ok && infra.hostname != "" {
					c.Labels[LabelPodName] = infra.hostname
				}
			}
			pid, state, err := e.containerState(s, r.ID)
			if err != nil {
				e.log.Warn("podman: cannot tell container state", "id", r.ID, "err", err)
			}
			c.PID, c.State = pid, state
			if len(c.Labels) == 0 {
				c.Labels = nil
			}
			out = append(out, c)
		}
		e.pruneConfigs(s, recs)
	}
	return out, nil
}

// storedContainer is one entry of containers.json.
type storedContainer struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Metadata string   `json:"metadata"`
}

// imageName is the image the container was created from, from the
// metadata podman stores as a JSON string.
func (r storedContainer) imageName() string {
	var md struct {
		ImageName string `json:"image-name"`
	}
	if r.Metadata == "" || json.Unmarshal([]byte(r.Metadata), &md) != nil {
		return ""
	}
	return md.ImageName
}

var containerID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readContainers parses containers.json, falling back to the last good
// parse when the file is mid-write or corrupt: losing every container of a
// storage for one bad read would make them all unresolvable.
func (e *Engine) readContainers(s storage) ([]storedContainer, error) {
	key := s.dataDir()
	data, err := readBeneath(s.Graph, s.DataName+"/containers.json", maxContainersJSON)
	if errors.Is(err, fs.ErrNotExist) {
		e.mu.Lock()
		delete(e.lastGood, key)
		e.mu.Unlock()
		return nil, err
	}
	var recs []storedContainer
	if err == nil {
		if jerr := json.Unmarshal(data, &recs); jerr != nil {
			err = fmt.Errorf("%s/containers.json: %w", key, jerr)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if last, ok := e.lastGood[key]; ok {
			e.log.Warn("podman: keeping the last good containers.json", "dir", key, "err", err)
			return last, nil
		}
		return nil, err
	}
	valid := recs[:0]
	for _, r := range recs {
		// IDs name directories below the run root; anything but podman's
		// 64 hex digits is refused before it reaches a path.
		if !containerID.MatchString(r.ID) {
			e.log.Warn("podman: skipping containers.json entry with an invalid ID", "dir", key, "id", r.ID)
			continue
		}
		valid = append(valid, r)
	}
	e.lastGood[key] = valid
	return valid, nil
}

// cachedConfig is what rootd uses from a container's OCI config.json,
// cached until the file changes.
type cachedConfig struct {
	dev, ino uint64
	mtimeNs  int64
	size     int64
	podID    string
	sandbox  string // pod member: the infra container's ID
	hostname string
}

// infra reports whether r, with config c, is its pod's infra container:
// the pod's members name it as their sandbox, and podman names it after
// the first 12 digits of the pod ID unless told otherwise.
func (c cachedConfig) infra(r storedContainer, isSandbox bool) bool {
	if c.podID == "" || c.sandbox != "" {
		return false
	}
	if isSandbox {
		return true
	}
	for _, n := range r.Names {
		if n == c.podID[:12]+"-infra" {
			return true
		}
	}
	return false
}

type ociConfig struct {
	Hostname    string            `json:"hostname"`
	Annotations map[string]string `json:"annotations"`
	Linux       *struct {
		CgroupsPath string `json:"cgroupsPath"`
	} `json:"linux"`
}

const annotationSandboxID = "io.kubernetes.cri-o.SandboxID"

// Pod cgroups: cgroupfs puts members under <parent>/<podID>/libpod-<id>,
// systemd under machine-libpod_pod_<podID>.slice.
var (
	systemdPodSlice = regexp.MustCompile(`libpod_pod_([0-9a-f]{64})\.slice`)
	cgroupfsPodDir  = regexp.MustCompile(`(?:^|/)([0-9a-f]{64})/libpod-[0-9a-f]{64}$`)
)

func podIDFromCgroupsPath(p string) string {
	if m := systemdPodSlice.FindStringSubmatch(p); m != nil {
		return m[1]
	}
	if m := cgroupfsPodDir.FindStringSubmatch(p); m != nil {
		return m[1]
	}
	return ""
}

// config returns the pod facts from a container's config.json; a missing
// file (a container never started) or a bad one yields none.
func (e *Engine) config(s storage, id string) cachedConfig {
	rel := s.DataName + "/" + id + "/userdata/config.json"
	key := s.dataDir() + "/" + id
	st, err := statBeneath(s.Graph, rel)
	if err != nil {
		return cachedConfig{}
	}
	e.mu.Lock()
	c, ok := e.configs[key]
	e.mu.Unlock()
	if ok && c.dev == uint64(st.Dev) && c.ino == st.Ino && c.mtimeNs == st.Mtim.Nano() && c.size == st.Size {
		return c
	}
	c = cachedConfig{dev: uint64(st.Dev), ino: st.Ino, mtimeNs: st.Mtim.Nano(), size: st.Size}
	data, err := readBeneath(s.Graph, rel, maxConfigJSON)
	if err != nil {
		e.log.Warn("podman: cannot read container config", "id", id, "err", err)
		return cachedConfig{}
	}
	var oci ociConfig
	if err := json.Unmarshal(data, &oci); err != nil {
		// Podman rewrites config.json on start; a torn read is retried
		// on the next List because nothing is cached.
		e.log.Warn("podman: cannot parse container config", "id", id, "err", err)
		return cachedConfig{}
	}
	c.hostname = oci.Hostname
	if oci.Linux != nil {
		c.podID = podIDFromCgroupsPath(oci.Linux.CgroupsPath)
	}
	if sb := oci.Annotations[annotationSandboxID]; containerID.MatchString(sb) && sb != id {
		c.sandbox = sb
	}
	e.mu.Lock()
	e.configs[key] = c
	e.mu.Unlock()
	return c
}

// pruneConfigs forgets cached configs of containers no longer listed.
func (e *Engine) pruneConfigs(s storage, recs []storedContainer) {
	prefix := s.dataDir() + "/"
	live := make(map[string]bool, len(recs))
	for _, r := range recs {
		live[prefix+r.ID] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.configs {
		if strings.HasPrefix(k, prefix) && !live[k] {
			delete(e.configs, k)
		}
	}
}

// cgroupMarks says where podman puts a container's processes (see
// engine.Container.Cgroups): libpod-<id> with the cgroupfs manager
// (/libpod_parent/libpod-<id>, or below a pod's cgroup), libpod-<id>.scope
// with systemd (machine.slice/, a user's user.slice/ when rootless; the
// init may sit in its container/ child). Not conmon's libpod-conmon-<id>.
// A container without a cgroup of its own (rootless on cgroup v1,
// --cgroups=disabled) cannot be verified and does not resolve.
func cgroupMarks(id string) []string {
	return []string{"libpod-" + id, "libpod-" + id + ".scope"}
}
