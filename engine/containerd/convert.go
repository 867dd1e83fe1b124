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
	}
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
//   - CRI (Kubernetes) containers have generated hex IDs and carry their
//     identity in labels; a container is named "<pod-namespace>/<pod>/<container>"
//     and a pod sandbox "<pod-namespace>/<pod>". The labels themselves are kept
//     too, under the same keys rootd's resolver uses for pod queries.
//   - nerdctl containers also have generated IDs; their name is the
//     nerdctl/name label.
//   - Otherwise (ctr run IMAGE NAME, most other clients) the ID is the name.
func namesFor(id string, labels map[string]string) []string {
	podNS, pod := labels[engine.LabelPodNamespace], labels[engine.LabelPodName]
	if podNS != "" && pod != "" {
		if c := labels[engine.LabelContainerName]; c != "" {
			return []string{podNS + "/" + pod + "/" + c}
		}
		return []string{podNS + "/" + pod}
	}
	if n := labels[LabelNerdctlName]; n != "" {
		return []string{n}
	}
	return []string{id}
}
