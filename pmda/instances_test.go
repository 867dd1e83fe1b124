package pmda

import (
	"testing"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
)

func listed(eng, ns, id string) resolver.Listed {
	return resolver.Listed{Container: engine.Container{Engine: eng, Namespace: ns, ID: id, State: engine.StateRunning, PID: 1}}
}

func names(s *instances) map[int32]string {
	out := map[int32]string{}
	for _, in := range s.list {
		out[in.num] = in.name
	}
	return out
}

func TestInstancesStableNeverReused(t *testing.T) {
	s := newInstances()
	s.update(1, []resolver.Listed{listed("docker", "", "a"), listed("lxc", "", "b")})
	if got := names(s); got[0] != "a" || got[1] != "b" || len(got) != 2 {
		t.Fatalf("first: %v", got)
	}
	// b goes, c comes: a keeps 0, c gets 2 (1 is never handed out again).
	s.update(2, []resolver.Listed{listed("docker", "", "a"), listed("lxc", "", "c")})
	if got := names(s); got[0] != "a" || got[2] != "c" || len(got) != 2 {
		t.Fatalf("second: %v", got)
	}
	// b comes back (an LXC container recreated under its name): a new number.
	s.update(3, []resolver.Listed{listed("lxc", "", "b"), listed("docker", "", "a"), listed("lxc", "", "c")})
	if got := names(s); got[0] != "a" || got[2] != "c" || got[3] != "b" || len(got) != 3 {
		t.Fatalf("third: %v", got)
	}
	if in := s.byNum(1); in != nil {
		t.Fatalf("instance 1 still found: %+v", in)
	}
	if in := s.byName["b"]; in == nil || in.num != 3 {
		t.Fatalf("byName[b] = %+v", in)
	}
	// A restart changes the PID, not the instance.
	l := listed("docker", "", "a")
	l.PID = 42
	s.update(4, []resolver.Listed{l, listed("lxc", "", "b"), listed("lxc", "", "c")})
	if in := s.byName["a"]; in == nil || in.num != 0 || in.c.PID != 42 {
		t.Fatalf("after restart: %+v", in)
	}
}

// One ID in two containerd namespaces: two instances, distinct names.
func TestInstancesNamespaceCollision(t *testing.T) {
	s := newInstances()
	s.update(1, []resolver.Listed{listed("containerd", "default", "web"), listed("containerd", "k8s.io", "web")})
	got := names(s)
	if got[0] != "web" || got[1] != "k8s.io/web" {
		t.Fatalf("names %v", got)
	}
	// The bare name, once its holder is gone, goes to the next newcomer
	// only; the survivor keeps its name.
	s.update(2, []resolver.Listed{listed("containerd", "k8s.io", "web")})
	s.update(3, []resolver.Listed{listed("containerd", "k8s.io", "web"), listed("containerd", "prod", "web")})
	got = names(s)
	if got[1] != "k8s.io/web" || got[2] != "web" || len(got) != 2 {
		t.Fatalf("names after churn %v", got)
	}
}

func TestDisplayName(t *testing.T) {
	for _, tc := range []struct {
		c    engine.Container
		want string
	}{
		{engine.Container{Names: []string{"/web"}}, "web"},
		{engine.Container{Labels: map[string]string{engine.LabelPodNamespace: "ns", engine.LabelPodName: "p", engine.LabelContainerName: "c"}}, "ns/p/c"},
		{engine.Container{ID: "x"}, "?"},
		// The CRI engine's: the name is the pod-local container name.
		{engine.Container{Names: []string{"c"}, Labels: map[string]string{engine.LabelPodNamespace: "ns", engine.LabelPodName: "p", engine.LabelContainerName: "c"}}, "ns/p/c"},
		// Docker's under a kubelet: a name of its own is kept.
		{engine.Container{Names: []string{"/k8s_c_p_ns_uid_0"}, Labels: map[string]string{engine.LabelPodNamespace: "ns", engine.LabelPodName: "p", engine.LabelContainerName: "c"}}, "k8s_c_p_ns_uid_0"},
		// Incomplete Kubernetes labels: the name.
		{engine.Container{Names: []string{"c"}, Labels: map[string]string{engine.LabelPodName: "p", engine.LabelContainerName: "c"}}, "c"},
		// A CRI pod sandbox: no name, no container name.
		{engine.Container{Labels: map[string]string{engine.LabelPodNamespace: "ns", engine.LabelPodName: "p"}}, "?"},
	} {
		if got := DisplayName(tc.c); got != tc.want {
			t.Errorf("DisplayName(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestMetricTable checks the table against pmdaroot's PMNS (root_root):
// the same names at the same PMIDs.
func TestMetricTable(t *testing.T) {
	want := map[string]string{
		"containers.engine": "1.0.0", "containers.name": "1.0.1", "containers.pid": "1.0.2",
		"containers.state.running": "1.0.3", "containers.state.paused": "1.0.4",
		"containers.state.restarting": "1.0.5", "containers.cgroup": "1.0.6",
	}
	for i, m := range Metrics {
		if want[m.Name] != PMIDString(m.Desc.PMID) || int(m.Desc.PMID&0x3ff) != i {
			t.Errorf("%s is %s at %d", m.Name, PMIDString(m.Desc.PMID), i)
		}
		if m.Desc.InDom != ContainersInDom || m.Desc.Units != 0 {
			t.Errorf("%s: indom %#x units %#x", m.Name, m.Desc.InDom, m.Desc.Units)
		}
	}
	if len(Metrics) != len(want) {
		t.Errorf("%d metrics", len(Metrics))
	}
}
