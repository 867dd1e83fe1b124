// Package engine defines what a container runtime must provide to rootd and
// keeps the registry of the runtimes compiled into a program.
//
// An engine package registers itself from init, the way database/sql drivers
// do; engine/builtins is the one list of the engines rootd and rootctl ship.
//
// # The contract
//
// Every engine implements Engine. The rules below are what the resolver
// relies on; engine/enginetest checks each of them, and every engine runs
// that suite (on fixtures in its unit tests, live in the integration tests).
//
//   - Name is the registered name: no ':' (queries use ENGINE:NAME), no space.
//   - List returns every container the runtime knows, running or not, each
//     with Engine set to Name, a non-empty ID unique within its Namespace,
//     one of the four States, names without a leading '/', and a PID exactly
//     when the State has a process (a live runtime always knows it). List
//     honours its context and is never called per request.
//   - A runtime that is absent or unreachable is not an error to open: List
//     returns an error wrapping ErrUnavailable.
//
// # Optional interfaces
//
// Like database/sql's driver interfaces, these are discovered with a type
// assertion:
//
//   - Watcher: Watch starts with a Resync (covering changes made before it
//     subscribed) and sends one after every reconnection; then Upsert for a
//     container's new state (named by Container.ID), Remove for one that is
//     gone (Event.ID, with Container.Namespace where IDs are per namespace)
//     or Resync when it only knows that something changed; Unavailable when
//     the runtime goes away, then Resync when it is back. It returns when its
//     context ends and never closes the channel.
//   - io.Closer: an engine holding connections or files releases them in
//     Close; closing twice is harmless.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// State is a container's lifecycle state as rootd reports it.
type State string

// The states rootd distinguishes. Engines map their own vocabulary onto these;
// anything that has no running init process (created, exited, dead) is Stopped.
const (
	StateRunning    State = "running"
	StatePaused     State = "paused"
	StateRestarting State = "restarting"
	StateStopped    State = "stopped"
)

// HasProcess reports whether a container in this state has an init process
// whose namespaces and cgroup can be inspected.
func (s State) HasProcess() bool {
	return s == StateRunning || s == StatePaused
}

// Well-known label keys. Engines that learn Kubernetes identity (from labels,
// or from dockershim-style names) store it under these keys so that the
// resolver can answer NAMESPACE/POD/CONTAINER queries for every engine alike.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelContainerName = "io.kubernetes.container.name"
	LabelPodUID        = "io.kubernetes.pod.uid"
)

// Container is one container as an engine sees it.
type Container struct {
	// Engine is the registered name of the engine that reported it.
	Engine string `json:"engine"`
	// ID is the engine's full, unique identifier (for most engines 64 hex digits).
	ID string `json:"id"`
	// Names are the human names the container answers to, without any leading "/".
	Names []string `json:"names,omitempty"`
	// PID is the init process as seen from the host, 0 when there is none.
	// A live runtime reports it for every running or paused container; a
	// state tree written by an old runtime may lack it, and the resolver
	// then answers ErrNotRunning.
	PID int `json:"pid,omitempty"`
	// State is the lifecycle state.
	State State `json:"state"`
	// Namespace is the engine's own grouping (containerd namespace), if any.
	Namespace string `json:"namespace,omitempty"`
	// Labels are the engine's labels plus the well-known keys above.
	Labels map[string]string `json:"labels,omitempty"`
	// Cgroups says where the engine's runtime puts this container in the
	// cgroup tree, so that the resolver can refuse a PID that is not the
	// container's before handing it out (see CgroupMatches). Each entry
	// is one or more whole path components: "docker-<id>.scope",
	// "lxc.payload.web", "rootd-test/web". Empty means the ID alone.
	Cgroups []string `json:"cgroups,omitempty"`
}

// CgroupMarks returns what the init process's cgroup path must contain
// for the container: its Cgroups, or else its ID.
func (c Container) CgroupMarks() []string {
	if len(c.Cgroups) > 0 {
		return c.Cgroups
	}
	return []string{c.ID}
}

// CgroupMatches reports whether the cgroup path (with or without its
// leading slash) holds one of marks as whole consecutive components: the
// process sits in the cgroup a mark names, or below it (systemd inside a
// container puts its init in <cgroup>/init.scope; Kubernetes and systemd put
// the runtime's cgroup below slices). "docker/abc" matches mark "abc" but
// not "ab", and "libpod-conmon-abc.scope" does not match "libpod-abc.scope".
// An empty mark, or one with an empty component, matches nothing.
func CgroupMatches(path string, marks []string) bool {
	for _, m := range marks {
		if validMark(m) && hasComponents(path, m) {
			return true
		}
	}
	return false
}

func validMark(m string) bool {
	m = strings.TrimSuffix(m, MarkNumberSuffix)
	return m != "" && m[0] != '/' && m[len(m)-1] != '/' && !strings.Contains(m, "//")
}

// MarkNumberSuffix, at the end of a cgroup mark, lets its last component be
// followed by "-" and a decimal number: "lxc.payload.web-#" matches
// lxc.payload.web and lxc.payload.web-1. LXC names a container's cgroup so
// when the plain name is taken, as it stays after a container whose monitor
// was killed; an engine uses it only where no other container could own
// such a name.
const MarkNumberSuffix = "-#"

// hasComponents reports whether m occurs in path bounded by '/' or the
// ends of path on both sides.
func hasComponents(path, m string) bool {
	m, numbered := strings.CutSuffix(m, MarkNumberSuffix)
	for from := 0; from+len(m) <= len(path); {
		i := strings.Index(path[from:], m)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(m)
		if numbered && end+1 < len(path) && path[end] == '-' {
			j := end + 1
			for j < len(path) && path[j] >= '0' && path[j] <= '9' {
				j++
			}
			if j > end+1 {
				end = j
			}
		}
		if (i == 0 || path[i-1] == '/') && (end == len(path) || path[end] == '/') {
			return true
		}
		from = i + 1
	}
	return false
}

// ShortID is the 12-character abbreviation operators know from docker ps,
// for IDs of 64 hex digits. Other IDs (LXC names, containerd IDs chosen by
// people) are shown whole: cut short they would read as some other name.
func (c Container) ShortID() string {
	if len(c.ID) == 64 && strings.Trim(c.ID, "0123456789abcdef") == "" {
		return c.ID[:12]
	}
	return c.ID
}

// Engine lists the containers of one runtime.
type Engine interface {
	// Name is the registered engine name ("docker", "podman", ...).
	Name() string
	// List returns every container the runtime knows, running or not.
	// It returns an error wrapping ErrUnavailable when the runtime cannot be
	// reached or is not installed on this host.
	List(ctx context.Context) ([]Container, error)
}

// Watcher is implemented by engines that can report changes as they happen,
// so that the resolver's index stays fresh without polling.
type Watcher interface {
	// Watch sends changes to events until ctx is cancelled, reconnecting by
	// itself after errors. It must not close events.
	Watch(ctx context.Context, events chan<- Event)
}

// EventKind says what an Event means to the resolver's index.
type EventKind int

const (
	// Upsert carries a container's new state.
	Upsert EventKind = iota + 1
	// Remove says that the container with ID is gone.
	Remove
	// Resync asks the resolver to replace the engine's containers with a
	// fresh List, for engines that only know that something changed, or
	// after events may have been missed.
	Resync
	// Unavailable says the runtime went away: its containers stop resolving
	// until the next Resync.
	Unavailable
)

func (k EventKind) String() string {
	switch k {
	case Upsert:
		return "upsert"
	case Remove:
		return "remove"
	case Resync:
		return "resync"
	case Unavailable:
		return "unavailable"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change reported by a Watcher.
type Event struct {
	Kind      EventKind
	Engine    string
	ID        string    // Remove; with Container.Namespace where IDs are per namespace
	Container Container // Upsert
	Err       error     // Unavailable
}

// Sentinel errors shared by engines, the resolver and the daemon; check them
// with errors.Is.
var (
	ErrNotFound    = errors.New("no such container")
	ErrAmbiguous   = errors.New("container name is ambiguous")
	ErrNotRunning  = errors.New("container is not running")
	ErrInvalidName = errors.New("invalid container name")
	ErrUnavailable = errors.New("container engine unavailable")
)

// AmbiguousError lists the containers that a query matched equally well.
type AmbiguousError struct {
	Query      string
	Candidates []Container
}

func (e *AmbiguousError) Error() string {
	ids := make([]string, len(e.Candidates))
	for i, c := range e.Candidates {
		name := ""
		if len(c.Names) > 0 {
			name = " (" + c.Names[0] + ")"
		}
		ids[i] = c.Engine + ":" + c.ShortID() + name
	}
	return fmt.Sprintf("%q is ambiguous: matches %s", e.Query, strings.Join(ids, ", "))
}

func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// Env is what every engine gets from the program that opens it.
type Env struct {
	Log *slog.Logger
	// Getenv reads the environment (PCP_DOCKER_DIR and friends); tests
	// replace it.
	Getenv func(string) string
}

// DisplayName is the name people know a container by, from its names and
// labels: the first name, without Docker's leading slash; for a Kubernetes
// container whose only name is its name within its pod (the CRI engine's)
// or that has no name (the containerd engine's), NAMESPACE/POD/CONTAINER
// from its labels, which names it on the node; else "". A name of its own
// that differs from the pod-local one (Docker's k8s_... names) is kept.
// containers.name and rootctl's NAME column both show it.
func DisplayName(names []string, labels map[string]string) string {
	ns, pod, ctr := labels[LabelPodNamespace], labels[LabelPodName], labels[LabelContainerName]
	triple := ns != "" && pod != "" && ctr != ""
	if len(names) > 0 && names[0] != "" && (!triple || names[0] != ctr) {
		return strings.TrimPrefix(names[0], "/")
	}
	if triple {
		return ns + "/" + pod + "/" + ctr
	}
	return ""
}
