// Package crinode makes a private containerd with its CRI plugin and drives
// it through the CRI as a kubelet does: host-network pod sandboxes and
// busybox containers in them. The live tests (integration/cri_test.go) and
// the CRI benchmark (rootbench cri) share it; nothing in rootd uses it.
//
// It needs containerd and ctr on PATH and the busybox OCI layout that
// scripts/engines/containerd.sh writes (BusyboxLayout); no registry and no
// CNI plugin (the pods use the node's network).
package crinode

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
)

// PauseImage is the sandbox image of the private daemon: the busybox image
// with a command that keeps running (the shared image's is "sh").
const PauseImage = "docker.io/rootd/bb-pause:latest"

// BusyboxLayout is the OCI layout of the busybox image that
// scripts/engines/containerd.sh writes.
const BusyboxLayout = "/var/lib/rootd-ci/bb-oci/layout"

// Socket is the private daemon's socket in dir.
func Socket(dir string) string { return filepath.Join(dir, "containerd.sock") }

// Setup writes the private daemon's configuration into dir (config version
// 2, restrict_oom_score_adj so that runc can run in these machines'
// containers, sandbox_image PauseImage, CNI directories of its own that
// host-network pods never use) and returns the containerd command line:
// root, state and socket all under dir.
func Setup(dir string) ([]string, error) {
	config := filepath.Join(dir, "config.toml")
	conf := fmt.Sprintf(`version = 2
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, PauseImage, filepath.Join(dir, "cni-bin"), filepath.Join(dir, "cni-conf"))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return []string{"containerd", "--config", config, "--root", filepath.Join(dir, "root"),
		"--state", filepath.Join(dir, "state"), "--address", Socket(dir)}, nil
}

// Ready reports whether the daemon at socket answers.
func Ready(ctx context.Context, socket string) error {
	return exec.CommandContext(ctx, "ctr", "-a", socket, "version").Run()
}

// ImportPauseImage writes PauseImage as an OCI archive into dir, built from
// the busybox layout, and imports it into the daemon's k8s.io namespace.
func ImportPauseImage(ctx context.Context, socket, dir string) error {
	path := filepath.Join(dir, "bb-pause.tar")
	if err := writePauseImage(BusyboxLayout, path); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "ctr", "-a", socket, "-n", "k8s.io", "images", "import", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// writePauseImage writes an OCI image archive at path of the busybox
// layout, its command changed to a long sleep and its name PauseImage.
func writePauseImage(layout, path string) error {
	blob := func(d string) string {
		return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	read := func(path string, v any) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("the busybox OCI layout (scripts/engines/containerd.sh): %w", err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := read(filepath.Join(layout, "index.json"), &index); err != nil {
		return err
	}
	if len(index.Manifests) != 1 {
		return fmt.Errorf("busybox layout: %d manifests, want 1", len(index.Manifests))
	}
	var manifest map[string]any
	if err := read(blob(index.Manifests[0].Digest), &manifest); err != nil {
		return err
	}
	cfgDesc, ok := manifest["config"].(map[string]any)
	if !ok {
		return errors.New("busybox manifest has no config")
	}
	cfgDigest, _ := cfgDesc["digest"].(string)
	var cfg map[string]any
	if err := read(blob(cfgDigest), &cfg); err != nil {
		return err
	}
	inner, ok := cfg["config"].(map[string]any)
	if !ok {
		return errors.New("busybox image config has no config object")
	}
	inner["Cmd"] = []string{"/bin/sleep", "100000"}
	layers, _ := manifest["layers"].([]any)

	files := map[string][]byte{}
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		files["blobs/sha256/"+d] = b
		return "sha256:" + d, len(b)
	}
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgDesc["digest"], cfgDesc["size"] = put(cfgBytes)
	for _, l := range layers {
		lm, _ := l.(map[string]any)
		d, _ := lm["digest"].(string)
		b, err := os.ReadFile(blob(d))
		if err != nil {
			return err
		}
		put(b)
	}
	manBytes, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	manDigest, manSize := put(manBytes)
	idx, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []any{map[string]any{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      manDigest,
			"size":        manSize,
			"annotations": map[string]string{"io.containerd.image.name": PauseImage, "org.opencontainers.image.ref.name": "latest"},
		}},
	})
	if err != nil {
		return err
	}
	files["index.json"] = idx
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			f.Close()
			return err
		}
		if _, err := tw.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Node is a CRI client of a private daemon that remembers the pods it made.
type Node struct {
	Dir  string // the daemon's directory (pods' log directories go here)
	Sock string
	RT   runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn

	mu   sync.Mutex
	pods []string
}

// Dial returns a CRI client of the daemon at socket; dir is where pods'
// log directories go.
func Dial(dir, socket string) (*Node, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &Node{Dir: dir, Sock: socket, RT: runtimeapi.NewRuntimeServiceClient(conn), conn: conn}, nil
}

// Close closes the client.
func (n *Node) Close() error { return n.conn.Close() }

// Pod is one pod made through the CRI.
type Pod struct {
	ID  string
	Cfg *runtimeapi.PodSandboxConfig
}

// hostNetwork runs a pod's processes in the node's network namespace: no
// CNI is needed. Such a pod must not set a hostname; it has the node's.
func hostNetwork() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
}

// RunPod runs a host-network pod sandbox with the labels a kubelet sets, so
// that the containerd engine sees the same Kubernetes identity as the CRI
// engine.
func (n *Node) RunPod(ctx context.Context, namespace, name, uid string) (*Pod, error) {
	logs := filepath.Join(n.Dir, "logs", uid)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: namespace},
		LogDirectory: logs,
		Labels:       map[string]string{"app": name, engine.LabelPodNamespace: namespace, engine.LabelPodName: name, engine.LabelPodUID: uid},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: hostNetwork()},
		},
	}
	resp, err := n.RT.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox %s/%s: %w", namespace, name, err)
	}
	n.mu.Lock()
	n.pods = append(n.pods, resp.GetPodSandboxId())
	n.mu.Unlock()
	return &Pod{ID: resp.GetPodSandboxId(), Cfg: cfg}, nil
}

// RunContainer creates and starts a busybox sleep named name in pod.
func (n *Node) RunContainer(ctx context.Context, pod *Pod, name string) (string, error) {
	md := pod.Cfg.GetMetadata()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: PauseImage},
		Command:  []string{"/bin/sleep", "100000"},
		Labels: map[string]string{
			engine.LabelPodNamespace:  md.GetNamespace(),
			engine.LabelPodName:       md.GetName(),
			engine.LabelPodUID:        md.GetUid(),
			engine.LabelContainerName: name,
		},
		LogPath: name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: hostNetwork()},
		},
	}
	resp, err := n.RT.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.ID, Config: cfg, SandboxConfig: pod.Cfg})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s: %w", name, err)
	}
	id := resp.GetContainerId()
	if _, err := n.RT.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return id, fmt.Errorf("StartContainer %s: %w", name, err)
	}
	return id, nil
}

// ContainerPID is the init PID the runtime reports for a container.
func (n *Node) ContainerPID(ctx context.Context, id string) (int, error) {
	st, err := n.RT.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
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

// IDs lists every sandbox and container ID of the node: a prefix is unique
// only among all of them.
func (n *Node) IDs(ctx context.Context) ([]string, error) {
	sbs, err := n.RT.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, err
	}
	cts, err := n.RT.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range sbs.GetItems() {
		ids = append(ids, s.GetId())
	}
	for _, c := range cts.GetContainers() {
		ids = append(ids, c.GetId())
	}
	return ids, nil
}

// RemovePods stops and removes every pod made through n, with its
// containers, and returns what failed.
func (n *Node) RemovePods(ctx context.Context) []error {
	n.mu.Lock()
	pods := n.pods
	n.pods = nil
	n.mu.Unlock()
	var errs []error
	for _, id := range pods {
		if _, err := n.RT.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s: %w", id, err))
		}
		if _, err := n.RT.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s: %w", id, err))
		}
	}
	return errs
}
