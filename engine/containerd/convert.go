package containerd

import (
	"maps"

	tasktypes "github.com/containerd/containerd/api/types/task"

	"github.com/rootd-project/rootd/engine"
)

// record is what the engine needs of a containerd container.
type record struct {
	ID     string
	Labels map[string]string
}

// taskState is what the engine needs of a container's task (its init process).
type taskState struct {
	ContainerID string
	PID         uint32
	Status      tasktypes.Status
}

// LabelNerdctlName is where nerdctl keeps the --name of a container whose ID
// it generated.
const LabelNerdctlName = "nerdctl/name"

// toContainer combines a container and its task (nil when it has none).
func toContainer(namespace string, r record, t *taskState) engine.Container {
	state, pid := stateOf(t)
	return engine.Container{
		Engine:    Name,
		ID:        r.ID,
		Names:     namesFor(r.ID, r.Labels),
		PID:       pid,
		State:     state,
		Namespace: namespace,
		Labels:    maps.Clone(r.Labels),
		Cgroups:   cgroupMarks(namespace, r.ID),
	}
}

// cgroupMarks says where containerd's clients put a container's processes
// (see engine.Container.Cgroups): <namespace>/<id> by default (ctr run,
// nerdctl with cgroupfs), cri-containerd-<id>.scope (CRI, systemd driver:
// kubepods.slice/...), nerdctl-<id>.scope (nerdctl, systemd), and, for IDs
// of 64 hex digits only, the ID alone (CRI, cgroupfs driver:
// /kubepods/.../<id>): a short chosen ID such as "web" alone would match
// too much. A client that sets another cgroupsPath (ctr run --cgroup)
// makes the container fail verification.
func cgroupMarks(namespace, id string) []string {
	marks := []string{namespace + "/" + id, "cri-containerd-" + id + ".scope", "nerdctl-" + id + ".scope"}
	if isGeneratedID(id) {
		marks = append(marks, id)
	}
	return marks
}

func isGeneratedID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !('0' <= id[i] && id[i] <= '9' || 'a' <= id[i] && id[i] <= 'f') {
			return false
		}
	}
	return true
}

// stateOf maps a task onto rootd's states. Only a running or paused task has
// an init process worth reporting: a created task's process has not run the
// container's command yet, and a stopped task's PID is stale.
func stateOf(t *taskState) (engine.State, int) {
	if t == nil {
		return engine.StateStopped, 0
	}
	switch t.Status {
	case tasktypes.Status_RUNNING:
		return engine.StateRunning, int(t.PID)
	case tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		return engine.StatePaused, int(t.PID)
	default: // CREATED, STOPPED, UNKNOWN
		return engine.StateStopped, 0
	}
}

// namesFor derives the human names of a container:
//
//   - CRI (Kubernetes) containers and pod sandboxes (they carry the pod
//     labels) get none: their identity is in the labels, which the resolver
//     matches as NAMESPACE/POD/CONTAINER. A name spelled the same way would
//     defeat the resolver's rule that prefers the running one of a restarted
//     container's generations, which applies only to label matches.
//   - nerdctl containers have generated IDs; their name is the nerdctl/name
//     label.
//   - Otherwise (ctr run IMAGE NAME, most other clients) the ID is the name
//     the user chose.
func namesFor(id string, labels map[string]string) []string {
	if labels[engine.LabelPodName] != "" || labels[engine.LabelPodNamespace] != "" {
		return nil
	}
	if n := labels[LabelNerdctlName]; n != "" {
		return []string{n}
	}
	return []string{id}
}
