//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/cri"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/internal/crinode"
)

// The CRI engine against a private containerd with its CRI plugin: pods and
// containers are made through the CRI itself, as a kubelet makes them.

// criNode is a private containerd with the CRI plugin and a CRI client
// (internal/crinode, shared with rootbench cri).
type criNode struct {
	*crinode.Node
	dir  string
	sock string
	d    *privateDaemon
	rt   runtimeapi.RuntimeServiceClient
}

// startCRIContainerd starts a containerd of the test's own with the CRI
// plugin (crinode.Setup: config version 2, restrict_oom_score_adj so that
// runc can run here, the sandbox image imported locally into k8s.io), and
// cleans up every pod made through it and then the daemon.
func startCRIContainerd(t *testing.T) *criNode {
	t.Helper()
	dir := hungDir(t)
	argv, err := crinode.Setup(dir)
	if err != nil {
		t.Fatal(err)
	}
	sock := crinode.Socket(dir)
	d := &privateDaemon{
		t:     t,
		name:  "private containerd (CRI)",
		argv:  argv,
		log:   filepath.Join(dir, "containerd.log"),
		ready: func() error { return crinode.Ready(context.Background(), sock) },
	}
	d.start()
	node, err := crinode.Dial(dir, sock)
	if err != nil {
		t.Fatal(err)
	}
	n := &criNode{Node: node, dir: dir, sock: sock, d: d, rt: node.RT}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, err := range n.RemovePods(ctx) {
			t.Logf("cleanup: %v", err)
		}
		n.Close()
		n.d.stop()
		if t.Failed() {
			b, _ := os.ReadFile(n.d.log)
			t.Logf("containerd log (tail):\n%s", tail(string(b), 60))
		}
	})
	if err := crinode.ImportPauseImage(ctxT(t, 2*time.Minute), sock, dir); err != nil {
		t.Fatal(err)
	}
	return n
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// criRuntime drives containers of one pod through the CRI for enginetest.
type criRuntime struct {
	n   *criNode
	pod *crinode.Pod
}

func (r criRuntime) Create(ctx context.Context, name string) (string, error) {
	return r.n.RunContainer(ctx, r.pod, name)
}

// Pause: the CRI has no pause.
func (r criRuntime) Pause(context.Context, string) error { return errors.ErrUnsupported }

func (r criRuntime) Stop(ctx context.Context, id string) error {
	_, err := r.n.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0})
	return err
}

func (r criRuntime) Remove(ctx context.Context, id string) error {
	_, err := r.n.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	return err
}

// TestConformanceCRI runs the whole suite, Outage included, over the CRI of
// a private containerd: containers made, stopped and removed through the
// CRI in a host-network pod, and the daemon killed and started again.
func TestConformanceCRI(t *testing.T) {
	n := startCRIContainerd(t)
	ctx := ctxT(t, 2*time.Minute)
	pod, err := n.RunPod(ctx, "rootd-conf", "conf-0", fmt.Sprintf("conf-uid-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	first, err := n.RunContainer(ctx, pod, "first")
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Run(t, enginetest.Harness{
		Open:       openRegistered(t, "cri", noEnv, "--cri-endpoint", n.sock),
		OpenAbsent: openRegistered(t, "cri", noEnv, "--cri-endpoint", filepath.Join(n.dir, "no-cri.sock")),
		Expect: []engine.Container{
			{ID: first, Names: []string{"first"}, State: engine.StateRunning},
			{ID: pod.ID, State: engine.StateRunning},
		},
		Live:    true,
		Runtime: criRuntime{n, pod},
		Outage:  privateOutage{n.d},
		Timeout: 30 * time.Second,
	})
}

// criIDs lists every sandbox and container ID of the node: a prefix is
// unique only among all of them.
func (n *criNode) criIDs(t *testing.T) []string {
	ids, err := n.IDs(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestCRIRootd: rootd with the cri engine alone, and with the cri and
// containerd engines over the same daemon, answers the real C client for a
// pod's container by NAMESPACE/POD/CONTAINER, ID and unique prefix, and sees
// it stop and go without a restart; with both engines the container is one
// (the CRI's), never ambiguous.
func TestCRIRootd(t *testing.T) {
	n := startCRIContainerd(t)
	ctx := ctxT(t, 3*time.Minute)
	uid := fmt.Sprintf("web-uid-%d", os.Getpid())
	pod, err := n.RunPod(ctx, "rootd-ns", "web-0", uid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.RunContainer(ctx, pod, "nginx")
	if err != nil {
		t.Fatal(err)
	}
	// A second pod with a container of the same name: the triple, not the
	// bare name, tells them apart.
	other, err := n.RunPod(ctx, "rootd-ns", "web-1", uid+"-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.RunContainer(ctx, other, "nginx"); err != nil {
		t.Fatal(err)
	}
	pid, err := n.ContainerPID(ctx, id)
	if err != nil || pid <= 0 {
		t.Fatalf("ContainerStatus pid %d: %v", pid, err)
	}
	cgroup := memoryCgroup(t, pid)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	triple := "rootd-ns/web-0/nginx"
	queries := []string{triple, "cri:" + triple, id, id[:12], shortestUniquePrefix(id, n.criIDs(t))}
	t.Logf("container %s: pid %d, cgroup %s, host %s; queries %q", id, pid, cgroup, host, queries)

	criOnly := startRootd(t, nil, "--engines", "cri", "--cri-endpoint", n.sock)
	both := startRootd(t, nil, "--engines", "cri,containerd", "--cri-endpoint", n.sock, "--containerd-address", n.sock)
	daemons := []struct {
		name string
		d    *daemon
	}{{"cri", criOnly}, {"cri,containerd", both}}

	for _, x := range daemons {
		t.Run("answers/"+x.name, func(t *testing.T) {
			for i, r := range cLookup(t, x.d.socket, "pid", queries...) {
				if !r.OK || r.Value != strconv.Itoa(pid) {
					t.Errorf("C pid %q = %+v, want %d", queries[i], r, pid)
				}
			}
			for i, r := range cLookup(t, x.d.socket, "cgroup", queries...) {
				if !r.OK || r.Value != cgroup {
					t.Errorf("C cgroup %q = %+v, want %q", queries[i], r, cgroup)
				}
			}
			for i, r := range cLookup(t, x.d.socket, "hostname", queries...) {
				if !r.OK || r.Value != host {
					t.Errorf("C hostname %q = %+v, want %q (host network)", queries[i], r, host)
				}
			}
			// Two pods have an nginx: the bare name is ambiguous, never a guess.
			if r := cLookup(t, x.d.socket, "pid", "nginx")[0]; r.OK || r.Code != codeNotUnique {
				t.Errorf("C pid nginx = %+v, want error %d", r, codeNotUnique)
			}
		})
	}

	// The daemon's view through the socket, and the same engines read
	// in-process, each list the container once.
	for _, ls := range []struct {
		name string
		args []string
	}{
		{"through the socket", []string{"--config", "/dev/null", "-s", both.socket, "ls"}},
		{"in-process", []string{"--config", "/dev/null", "--in-process", "--engines", "cri,containerd", "--cri-endpoint", n.sock,
			"--containerd-address", n.sock, "ls"}},
	} {
		t.Run("rootctl ls shows it once, under cri/"+ls.name, func(t *testing.T) {
			checkCRILs(t, ls.args, id, pid, cgroup)
		})
	}

	// Stop and remove through the CRI; each rootd sees it within the relist
	// interval, without a restart.
	await := func(what string, code int) {
		for _, x := range daemons {
			eventually(t, 15*time.Second, x.name+": "+what, func() (bool, string) {
				rs := cLookup(t, x.d.socket, "pid", queries...)
				for i, r := range rs {
					if r.OK || r.Code != code {
						return false, fmt.Sprintf("%q: %+v", queries[i], r)
					}
				}
				return true, ""
			})
		}
	}
	if _, err := n.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	await("stopped container answers not running", codeNotRunning)
	if _, err := n.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	await("removed container answers no such container", codeNoContainer)
}

// pmprobeInstances runs PCP's pmprobe -I on metric through s's pmcd and
// returns the instance names it lists.
func (s *pmcdStack) pmprobeInstances(metric string) ([]string, error) {
	cmd := exec.Command(s.pcp.tool("pmprobe"), "-h", "unix:"+s.socket, "-I", metric)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pmprobe -I %s: %w\n%s", metric, err, out)
	}
	// containers.name 3 "id1" "id2" "id3"
	name, rest, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	nstr, rest, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(nstr)
	if name != metric || err != nil || n < 0 {
		return nil, fmt.Errorf("pmprobe -I %s: %q", metric, out)
	}
	words, err := pcpWords(rest)
	if err != nil || len(words) != n {
		return nil, fmt.Errorf("pmprobe -I %s: %q (%v)", metric, out, err)
	}
	return words, nil
}

// TestCRIPMDA runs PCP's own pmcd with rootd --pmda as its root agent, the
// cri and containerd engines both over one private containerd with the CRI
// plugin (so both see the same pod): a pod's container is exactly one
// instance of containers.*, under cri, named NAMESPACE/POD/CONTAINER, with
// the PID, state and cgroup containerd and /proc give, reachable by that
// triple as a pmcd container context; stopped it is not running; removed
// it is gone. pminfo and pmprobe are PCP's.
func TestCRIPMDA(t *testing.T) {
	n := startCRIContainerd(t)
	ctx := ctxT(t, 3*time.Minute)
	pod, err := n.RunPod(ctx, "rootd-pmda", "web-0", fmt.Sprintf("pmda-uid-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.RunContainer(ctx, pod, "nginx")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := n.ContainerPID(ctx, id)
	if err != nil || pid <= 0 {
		t.Fatalf("ContainerStatus pid %d: %v", pid, err)
	}
	cgroup := memoryCgroup(t, pid)
	const triple = "rootd-pmda/web-0/nginx"

	s := newPMCDStack(t, "--engines", "cri,containerd", "--cri-endpoint", n.sock, "--containerd-address", n.sock)
	s.start(t)

	// instancesOf counts id among the instances pmprobe lists.
	instancesOf := func(id string) (int, string) {
		insts, err := s.pmprobeInstances("containers.engine")
		if err != nil {
			return -1, err.Error()
		}
		return strings.Count("\x00"+strings.Join(insts, "\x00")+"\x00", "\x00"+id+"\x00"), fmt.Sprint(insts)
	}
	eventually(t, 20*time.Second, "the container and its sandbox listed", func() (bool, string) {
		c, out := instancesOf(id)
		p, _ := instancesOf(pod.ID)
		return c > 0 && p > 0, out
	})

	t.Run("one instance, under cri, as NAMESPACE/POD/CONTAINER", func(t *testing.T) {
		if c, insts := instancesOf(id); c != 1 {
			t.Errorf("pmprobe -I containers.engine lists %s %d times: %s", id, c, insts)
		}
		if c, insts := instancesOf(pod.ID); c != 1 {
			t.Errorf("pmprobe -I containers.engine lists the sandbox %s %d times: %s", pod.ID, c, insts)
		}
		out := s.mustPminfo(t, "-f", "containers")
		t.Logf("pminfo -f containers:\n%s", out)
		f := parseFetch(out)
		for _, tc := range []struct{ metric, want string }{
			{"containers.engine", "cri"},
			{"containers.name", triple},
			{"containers.pid", strconv.Itoa(pid)},
			{"containers.state.running", "1"},
			{"containers.state.paused", "0"},
			{"containers.state.restarting", "0"},
			{"containers.cgroup", cgroup},
		} {
			if got, ok := f[tc.metric][id]; !ok || got != tc.want {
				t.Errorf("%s[%s] = %q (present %v), want %q", tc.metric, id, got, ok, tc.want)
			}
		}
		if got := f["containers.engine"][pod.ID]; got != "cri" {
			t.Errorf("containers.engine of the sandbox %s = %q, want cri", pod.ID, got)
		}
		// No other instance carries the triple (the containerd engine's
		// view of the same container is not a second instance).
		for inst, name := range f["containers.name"] {
			if name == triple && inst != id {
				t.Errorf("instance %s is named %s too (engine %q)", inst, triple, f["containers.engine"][inst])
			}
		}
	})

	t.Run("the triple is a pmcd container context", func(t *testing.T) {
		host, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		out := s.mustPminfo(t, "--container="+triple, "-f", "kernel.uname.nodename")
		if !strings.Contains(out, `value "`+host+`"`) {
			t.Errorf("pminfo --container=%s -f kernel.uname.nodename: want the node's %q (host network):\n%s", triple, host, out)
		}
	})

	if _, err := n.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the stopped container not running, without a PID", func() (bool, string) {
		out, err := s.pminfo("-f", "containers.state.running", "containers.pid")
		f := parseFetch(out)
		_, hasPID := f["containers.pid"][id]
		return err == nil && f["containers.state.running"][id] == "0" && !hasPID, out
	})
	if c, insts := instancesOf(id); c != 1 {
		t.Errorf("stopped: pmprobe -I lists %s %d times: %s", id, c, insts)
	}

	if _, err := n.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the removed container gone from containers.*", func() (bool, string) {
		c, insts := instancesOf(id)
		return c == 0, insts
	})
	if c, insts := instancesOf(pod.ID); c != 1 {
		t.Errorf("the sandbox %s, still there, is listed %d times: %s", pod.ID, c, insts)
	}
}

// checkCRILs runs rootctl with args and checks that its table lists the
// container id once, under cri, running with pid and cgroup, and nothing of
// the CRI's under containerd.
func checkCRILs(t *testing.T, args []string, id string, pid int, cgroup string) {
	t.Helper()
	out, err := exec.Command(bins.rootctl, args...).CombinedOutput()
	t.Logf("rootctl %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatal(err)
	}
	short := (engine.Container{ID: id}).ShortID()
	var rows [][]string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[1] == short {
			rows = append(rows, f)
		}
	}
	if len(rows) != 1 || rows[0][0] != "cri" || rows[0][3] != "running" || rows[0][4] != strconv.Itoa(pid) || rows[0][5] != cgroup {
		t.Errorf("rootctl ls rows for %s: %q; want one: cri, running, pid %d, cgroup %s", short, rows, pid, cgroup)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "containerd ") {
			t.Errorf("a CRI sandbox or container listed under containerd: %q", l)
		}
	}
}
