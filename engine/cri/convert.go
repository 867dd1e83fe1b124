package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
)

// LabelKind says whether an entry is a pod's sandbox or one of its
// containers ("sandbox" or "container"), as containerd's own
// io.cri-containerd.kind label does.
const LabelKind = "io.rootd.cri.kind"

// sandboxContainer is a pod sandbox as a stopped container; the caller
// fills in the state and PID of a ready one. It has no names: a pod's name
// is not a container's, and its identity is in the labels.
func sandboxContainer(runtime string, sb *runtimeapi.PodSandbox) engine.Container {
	labels := maps.Clone(sb.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	setPod(labels, sb)
	delete(labels, engine.LabelContainerName)
	labels[LabelKind] = "sandbox"
	return engine.Container{
		Engine:  Name,
		ID:      sb.GetId(),
		State:   engine.StateStopped,
		Labels:  labels,
		Cgroups: cgroupMarks(runtime, sb.GetId()),
	}
}

// containerOf is a container as a stopped one; the caller fills in the
// state and PID of a running one. Its pod identity comes from its sandbox's
// metadata (sb may be nil when the sandbox went between the two lists: the
// container's own labels, which the kubelet sets, are kept then), its
// container name from its own metadata.
func containerOf(runtime string, ct *runtimeapi.Container, sb *runtimeapi.PodSandbox) engine.Container {
	labels := maps.Clone(ct.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	if sb != nil {
		setPod(labels, sb)
	}
	var names []string
	if n := ct.GetMetadata().GetName(); n != "" {
		labels[engine.LabelContainerName] = n
		names = []string{n}
	}
	labels[LabelKind] = "container"
	return engine.Container{
		Engine:  Name,
		ID:      ct.GetId(),
		Names:   names,
		State:   engine.StateStopped,
		Labels:  labels,
		Cgroups: cgroupMarks(runtime, ct.GetId()),
	}
}

// setPod stores a sandbox's Kubernetes identity under the well-known
// labels. The CRI metadata is what the runtime was asked to create, so it
// wins over labels of the same name.
func setPod(labels map[string]string, sb *runtimeapi.PodSandbox) {
	md := sb.GetMetadata()
	for k, v := range map[string]string{
		engine.LabelPodNamespace: md.GetNamespace(),
		engine.LabelPodName:      md.GetName(),
		engine.LabelPodUID:       md.GetUid(),
	} {
		if v != "" {
			labels[k] = v
		}
	}
}

// infoPID reads the init PID from a verbose status's info map: containerd
// and CRI-O both put a JSON object under "info" whose "pid" is the init
// process as the host sees it.
func infoPID(info map[string]string) (int, error) {
	raw, ok := info["info"]
	if !ok {
		return 0, errors.New(`verbose status has no "info"`)
	}
	var v struct {
		PID *int64 `json:"pid"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return 0, fmt.Errorf(`verbose status "info": %w`, err)
	}
	if v.PID == nil {
		return 0, errors.New(`verbose status "info" has no "pid"`)
	}
	if *v.PID <= 0 || *v.PID > 1<<22 {
		return 0, fmt.Errorf(`verbose status "info": pid %d is not a process`, *v.PID)
	}
	return int(*v.PID), nil
}

// cgroupMarks says where each runtime puts a container's (or sandbox's)
// processes, for engine.Container.Cgroups:
//
//   - containerd: cri-containerd-<id>.scope with the systemd cgroup driver;
//     <parent>/<id> with cgroupfs (the ID alone as the last component).
//   - CRI-O: crio-<id>.scope with systemd; <parent>/crio-<id> with
//     cgroupfs. Its conmon sits in crio-conmon-<id>, which neither matches.
//
// CRI IDs are 64 hex digits chosen by the runtime, so the ID alone names
// no host service. A runtime of another name gets every form.
func cgroupMarks(runtime, id string) []string {
	containerd := []string{"cri-containerd-" + id + ".scope", id}
	crio := []string{"crio-" + id + ".scope", "crio-" + id}
	switch runtime {
	case "containerd":
		return containerd
	case "cri-o":
		return crio
	}
	return append(containerd, crio...)
}
