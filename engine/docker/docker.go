// Package docker is rootd's Docker engine.
//
// It has two ways to learn about containers:
//
//   - API mode (the default): the Docker Engine API through Docker's own Go
//     client, with the event stream keeping the resolver fresh. If the daemon
//     cannot be reached, List falls back to reading the daemon's on-disk
//     state (see below), trusting a "running" container only when its PID
//     still is a process inside that container.
//   - On-disk mode, chosen by --docker-dir, or by $PCP_DOCKER_DIR when no
//     --docker-host is set (flag or file): the files under
//     DIR/containers are the truth, exactly as PCP's pmdaroot reads them (PCP
//     QA feeds pmdaroot such directories, with PIDs that do not exist on the
//     test host). inotify keeps the resolver fresh.
package docker

import (
	"flag"
	"fmt"
	"maps"
	"net/url"
	"strconv"
	"strings"

	"github.com/moby/moby/client"

	"github.com/rootd-project/rootd/engine"
)

// Name is the engine's registered name.
const Name = "docker"

const (
	defaultHost = "unix:///var/run/docker.sock"
	// defaultRoot is dockerd's default --data-root, read when the API is
	// unreachable.
	defaultRoot = "/var/lib/docker"
)

func init() {
	engine.Register(engine.Driver{
		Name:       Name,
		Summary:    "Docker containers, from the Docker API (events) or from Docker's state directory",
		Precedence: engine.PrecedenceRuntime,
		Configure:  configure,
	})
}

func configure(fs *flag.FlagSet) engine.OpenFunc {
	host := fs.String("docker-host", "",
		"Docker API address (default $DOCKER_HOST, else "+defaultHost+")")
	dir := fs.String("docker-dir", "",
		"read containers only from this Docker state directory (DIR/containers/*/config.v2.json), "+
			"never from the API (default $PCP_DOCKER_DIR unless --docker-host is set; unset means use the API)")
	root := fs.String("docker-data-root", defaultRoot,
		"dockerd's --data-root, whose state is read while the API does not answer (local unix:// hosts only)")
	return func(env engine.Env) (engine.Engine, error) {
		return openRoot(env, *host, *dir, *root)
	}
}

func open(env engine.Env, host, dir string) (engine.Engine, error) {
	return openRoot(env, host, dir, defaultRoot)
}

// openRoot opens the engine. What was set explicitly (a flag, or the
// configuration file through the flag) wins over the environment, as
// everywhere in rootd (flag > file > environment > default): --docker-dir,
// then --docker-host, then $PCP_DOCKER_DIR, then $DOCKER_HOST, then the
// default host. So a host named in rootd.conf is not overridden by a
// PCP_DOCKER_DIR inherited from pmcd's or a shell's environment.
func openRoot(env engine.Env, host, dir, dataRoot string) (engine.Engine, error) {
	if dir == "" && host == "" {
		dir = env.Getenv("PCP_DOCKER_DIR")
	}
	if dir != "" {
		env.Log.Info("docker: reading container state from disk only", "dir", dir)
		return &diskEngine{disk: &diskReader{dir: dir, log: env.Log}, log: env.Log}, nil
	}
	if host == "" {
		host = env.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = defaultHost
	}
	cli, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	e := &apiEngine{cli: cli, host: host, log: env.Log}
	// The on-disk state belongs to a daemon on this machine only.
	if u, err := url.Parse(host); err == nil && u.Scheme == "unix" && dataRoot != "" {
		e.fallback = &diskReader{dir: dataRoot, log: env.Log, procRoot: "/proc", verifyPIDs: true}
	}
	return e, nil
}

// stateFromFlags maps Docker's state booleans onto rootd's states. Paused is
// checked first: Docker keeps Running true while a container is paused, and
// PCP (whose QA data has a paused container with Running false) treats the
// paused flag on its own.
func stateFromFlags(running, paused, restarting bool) engine.State {
	switch {
	case paused:
		return engine.StatePaused
	case restarting:
		return engine.StateRestarting
	case running:
		return engine.StateRunning
	}
	return engine.StateStopped
}

// stateFromStatus maps the API's status word ("created", "running",
// "paused", "restarting", "removing", "exited", "dead").
func stateFromStatus(status string) engine.State {
	switch status {
	case "running":
		return engine.StateRunning
	case "paused":
		return engine.StatePaused
	case "restarting":
		return engine.StateRestarting
	}
	return engine.StateStopped
}

// containerNames drops the leading "/" of Docker's names. Names with a
// further "/" are legacy link aliases ("/web/db" is db as seen from web),
// which belong to the linking container's view, not to this container.
func containerNames(raw []string) []string {
	var names []string
	for _, n := range raw {
		n = strings.TrimPrefix(n, "/")
		if n == "" || strings.Contains(n, "/") {
			continue
		}
		names = append(names, n)
	}
	return names
}

// k8sIdentity holds what a dockershim container name says.
type k8sIdentity struct {
	Container, Pod, Namespace, UID string
}

// parseDockershimName parses the names the Kubernetes dockershim gives its
// containers, k8s_<container>_<pod>_<namespace>_<uid>_<attempt>. None of the
// parts can contain "_" (they are DNS labels/subdomains and a UUID), so the
// name splits into exactly six fields.
func parseDockershimName(name string) (k8sIdentity, bool) {
	f := strings.Split(name, "_")
	if len(f) != 6 || f[0] != "k8s" {
		return k8sIdentity{}, false
	}
	for _, part := range f[1:5] {
		if part == "" {
			return k8sIdentity{}, false
		}
	}
	if _, err := strconv.ParseUint(f[5], 10, 32); err != nil {
		return k8sIdentity{}, false
	}
	return k8sIdentity{Container: f[1], Pod: f[2], Namespace: f[3], UID: f[4]}, true
}

// withK8sLabels returns labels plus the Kubernetes identity from a
// dockershim name, never overriding a label Docker already reports.
func withK8sLabels(labels map[string]string, names []string) map[string]string {
	var id k8sIdentity
	ok := false
	for _, n := range names {
		if id, ok = parseDockershimName(n); ok {
			break
		}
	}
	if !ok {
		return labels
	}
	out := maps.Clone(labels)
	if out == nil {
		out = make(map[string]string, 4)
	}
	for k, v := range map[string]string{
		engine.LabelContainerName: id.Container,
		engine.LabelPodName:       id.Pod,
		engine.LabelPodNamespace:  id.Namespace,
		engine.LabelPodUID:        id.UID,
	} {
		if _, set := out[k]; !set {
			out[k] = v
		}
	}
	return out
}

// cgroupMarks says where Docker puts a container's processes (see
// engine.Container.Cgroups): a cgroup named by the ID (cgroupfs driver:
// /docker/<id>, Kubernetes /kubepods/.../<id>) or the systemd scope
// docker-<id>.scope (systemd driver: system.slice/, kubepods.slice/...).
func cgroupMarks(id string) []string {
	return []string{id, "docker-" + id + ".scope"}
}
