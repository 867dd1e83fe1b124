//go:build integration

package integration

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/cri"
	"github.com/rootd-project/rootd/engine/enginetest"
)

// The CRI engine against a private containerd with its CRI plugin: pods and
// containers are made through the CRI itself, as a kubelet makes them.

// criPauseImage is the sandbox image of the private daemon: the busybox
// image with a command that keeps running (the shared image's is "sh").
const criPauseImage = "docker.io/rootd/bb-pause:latest"

// criNode is a private containerd with the CRI plugin and a CRI client.
type criNode struct {
	dir  string
	sock string
	d    *privateDaemon
	rt   runtimeapi.RuntimeServiceClient
	// pods are the sandboxes made, removed (with their containers) at
	// cleanup.
	pods []string
}

// startCRIContainerd starts a containerd of the test's own with the CRI
// plugin (config version 2, restrict_oom_score_adj so that runc can run
// here, the sandbox image imported locally into k8s.io), and cleans up
// every pod made through it and then the daemon.
func startCRIContainerd(t *testing.T) *criNode {
	t.Helper()
	dir := hungDir(t)
	n := &criNode{dir: dir, sock: filepath.Join(dir, "containerd.sock")}
	config := filepath.Join(dir, "config.toml")
	conf := fmt.Sprintf(`version = 2
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, criPauseImage, filepath.Join(dir, "cni-bin"), filepath.Join(dir, "cni-conf"))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	n.d = &privateDaemon{
		t:    t,
		name: "private containerd (CRI)",
		argv: []string{"containerd", "--config", config, "--root", filepath.Join(dir, "root"),
			"--state", filepath.Join(dir, "state"), "--address", n.sock},
		log:   filepath.Join(dir, "containerd.log"),
		ready: func() error { return exec.Command("ctr", "-a", n.sock, "version").Run() },
	}
	n.d.start()
	conn, err := grpc.NewClient("unix://"+n.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	n.rt = runtimeapi.NewRuntimeServiceClient(conn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, id := range n.pods {
			if _, err := n.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Logf("cleanup: stop pod %s: %v", id, err)
			}
			if _, err := n.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Logf("cleanup: remove pod %s: %v", id, err)
			}
		}
		conn.Close()
		n.d.stop()
		if t.Failed() {
			b, _ := os.ReadFile(n.d.log)
			t.Logf("containerd log (tail):\n%s", tail(string(b), 60))
		}
	})
	cmdOut(t, 120*time.Second, "ctr", "-a", n.sock, "-n", "k8s.io", "images", "import", criPauseImageTar(t, dir))
	return n
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// criPauseImageTar writes an OCI image archive of the shared busybox
// layout (scripts/engines/containerd.sh) whose command is a long sleep,
// named criPauseImage.
func criPauseImageTar(t *testing.T, dir string) string {
	t.Helper()
	layout := "/var/lib/rootd-ci/bb-oci/layout"
	blob := func(d string) string {
		return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	read := func(path string, v any) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the busybox OCI layout is missing (run scripts/engines/containerd.sh): %v", err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	read(filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("busybox layout: %d manifests", len(index.Manifests))
	}
	var manifest map[string]any
	read(blob(index.Manifests[0].Digest), &manifest)
	cfgDesc := manifest["config"].(map[string]any)
	var cfg map[string]any
	read(blob(cfgDesc["digest"].(string)), &cfg)
	cfg["config"].(map[string]any)["Cmd"] = []string{"/bin/sleep", "100000"}

	files := map[string][]byte{}
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		files["blobs/sha256/"+d] = b
		return "sha256:" + d, len(b)
	}
	cfgBytes, _ := json.Marshal(cfg)
	cfgDesc["digest"], cfgDesc["size"] = put(cfgBytes)
	for _, l := range manifest["layers"].([]any) {
		d := l.(map[string]any)["digest"].(string)
		b, err := os.ReadFile(blob(d))
		if err != nil {
			t.Fatal(err)
		}
		put(b)
	}
	manBytes, _ := json.Marshal(manifest)
	manDigest, manSize := put(manBytes)
	idx, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      manDigest,
			"size":        manSize,
			"annotations": map[string]string{"io.containerd.image.name": criPauseImage, "org.opencontainers.image.ref.name": "latest"},
		}},
	})
	files["index.json"] = idx
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)

	path := filepath.Join(dir, "bb-pause.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// criPod is one pod made through the CRI.
type criPod struct {
	id  string
	cfg *runtimeapi.PodSandboxConfig
}

// hostNetwork runs a pod's processes in the node's network namespace: no
// CNI is needed. Such a pod must not set a hostname; it has the node's.
func hostNetwork() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
}

// runPod runs a host-network pod sandbox.
func (n *criNode) runPod(ctx context.Context, namespace, name, uid string) (*criPod, error) {
	logs := filepath.Join(n.dir, "logs", uid)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: namespace},
		LogDirectory: logs,
		// The labels a kubelet sets, so that the containerd engine sees
		// the same Kubernetes identity as the CRI engine.
		Labels: map[string]string{"app": name, engine.LabelPodNamespace: namespace, engine.LabelPodName: name, engine.LabelPodUID: uid},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: hostNetwork()},
		},
	}
	resp, err := n.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox %s/%s: %w", namespace, name, err)
	}
	n.pods = append(n.pods, resp.GetPodSandboxId())
	return &criPod{id: resp.GetPodSandboxId(), cfg: cfg}, nil
}

// runContainer creates and starts a busybox sleep in pod.
func (n *criNode) runContainer(ctx context.Context, pod *criPod, name string) (string, error) {
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: criPauseImage},
		Command:  []string{"/bin/sleep", "100000"},
		Labels: map[string]string{
			engine.LabelPodNamespace:  pod.cfg.Metadata.Namespace,
			engine.LabelPodName:       pod.cfg.Metadata.Name,
			engine.LabelPodUID:        pod.cfg.Metadata.Uid,
			engine.LabelContainerName: name,
		},
		LogPath: name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: hostNetwork()},
		},
	}
	resp, err := n.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.id, Config: cfg, SandboxConfig: pod.cfg})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s: %w", name, err)
	}
	id := resp.GetContainerId()
	if _, err := n.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return id, fmt.Errorf("StartContainer %s: %w", name, err)
	}
	return id, nil
}

// containerPID is the init PID containerd reports for a container.
func (n *criNode) containerPID(ctx context.Context, id string) (int, error) {
	st, err := n.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, err
	}
	var info struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		return 0, err
	}
	return info.PID, nil
}

// criRuntime drives containers of one pod through the CRI for enginetest.
type criRuntime struct {
	n   *criNode
	pod *criPod
}

func (r criRuntime) Create(ctx context.Context, name string) (string, error) {
	return r.n.runContainer(ctx, r.pod, name)
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
	pod, err := n.runPod(ctx, "rootd-conf", "conf-0", fmt.Sprintf("conf-uid-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	first, err := n.runContainer(ctx, pod, "first")
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Run(t, enginetest.Harness{
		Open:       openRegistered(t, "cri", noEnv, "--cri-endpoint", n.sock),
		OpenAbsent: openRegistered(t, "cri", noEnv, "--cri-endpoint", filepath.Join(n.dir, "no-cri.sock")),
		Expect: []engine.Container{
			{ID: first, Names: []string{"first"}, State: engine.StateRunning},
			{ID: pod.id, State: engine.StateRunning},
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
	ctx := ctxT(t, 10*time.Second)
	sbs, err := n.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cts, err := n.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sbs.GetItems() {
		ids = append(ids, s.GetId())
	}
	for _, c := range cts.GetContainers() {
		ids = append(ids, c.GetId())
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
	pod, err := n.runPod(ctx, "rootd-ns", "web-0", uid)
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.runContainer(ctx, pod, "nginx")
	if err != nil {
		t.Fatal(err)
	}
	// A second pod with a container of the same name: the triple, not the
	// bare name, tells them apart.
	other, err := n.runPod(ctx, "rootd-ns", "web-1", uid+"-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.runContainer(ctx, other, "nginx"); err != nil {
		t.Fatal(err)
	}
	pid, err := n.containerPID(ctx, id)
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

	t.Run("rootctl ls shows it once, under cri", func(t *testing.T) {
		out, err := exec.Command(bins.rootctl, "--config", "/dev/null", "--in-process", "--engines", "cri,containerd", "--cri-endpoint", n.sock,
			"--containerd-address", n.sock, "ls").CombinedOutput()
		t.Logf("rootctl ls:\n%s", out)
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
	})

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
