// Package kube checks the Kubernetes manifests in deploy/kubernetes: every
// document decodes strictly with the official API types (an unknown or
// duplicated field is an error, as the API server's strict field validation
// would say), and the DaemonSet mounts what rootd's engines read.
package kube

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const dir = "../../deploy/kubernetes"

// kustomization is the part of kustomize's Kustomization this directory
// uses; strict decoding rejects any other field, so adding one means
// extending this on purpose.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

type manifests struct {
	kust    kustomization
	objects map[string][]runtime.Object // by file
	ds      *appsv1.DaemonSet
	sa      *corev1.ServiceAccount
	ns      *corev1.Namespace
}

func load(t *testing.T) *manifests {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := appsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

	m := &manifests{objects: map[string][]runtime.Object{}}
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var listed []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			listed = append(listed, filepath.Base(f))
		}
	}
	if got, want := slices.Sorted(slices.Values(m.kust.Resources)), listed; !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, files %v: every manifest must be listed", got, want)
	}
	for _, name := range m.kust.Resources {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for {
			doc, err := r.Read()
			if err != nil {
				break
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m.objects[name] = append(m.objects[name], obj)
			switch o := obj.(type) {
			case *appsv1.DaemonSet:
				m.ds = o
			case *corev1.ServiceAccount:
				m.sa = o
			case *corev1.Namespace:
				m.ns = o
			default:
				t.Errorf("%s: unexpected kind %s", name, gvk)
			}
		}
	}
	if m.ds == nil || m.sa == nil || m.ns == nil {
		t.Fatalf("want a DaemonSet, a ServiceAccount and a Namespace")
	}
	return m
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	// The decoder used above must fail on a typo, or the test proves nothing.
	scheme := runtime.NewScheme()
	_ = appsv1.AddToScheme(scheme)
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	bad := []byte("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n")
	if _, _, err := dec.Decode(bad, nil, nil); err == nil || !runtime.IsStrictDecodingError(err) {
		t.Fatalf("hostPid (for hostPID) decoded without a strict error: %v", err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict([]byte("resources: [a]\nresorces: [b]\n"), &k); err == nil {
		t.Fatal("kustomization typo accepted")
	}
}

func TestDaemonSet(t *testing.T) {
	m := load(t)
	ds, pod := m.ds, m.ds.Spec.Template.Spec
	if m.kust.Namespace != m.ns.Name {
		t.Errorf("kustomization namespace %q, Namespace %q", m.kust.Namespace, m.ns.Name)
	}
	if !pod.HostPID || !pod.HostNetwork {
		t.Error("hostPID and hostNetwork are both needed (host PIDs; LXC's abstract sockets)")
	}
	if pod.ServiceAccountName != m.sa.Name {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", pod.ServiceAccountName, m.sa.Name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("rootd needs no API token: automountServiceAccountToken: false")
	}
	if !selects(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Error("selector does not match the pod template's labels")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext.capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: the capabilities listed are enough")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	if got := slices.Sorted(slices.Values(sc.Capabilities.Add)); !slices.Equal(got, []corev1.Capability{"CHOWN", "SYS_ADMIN", "SYS_PTRACE"}) {
		t.Errorf("add %v, want exactly CHOWN, SYS_ADMIN and SYS_PTRACE (see scripts/image-test.sh)", got)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation: false")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("runAsUser: 0 (the socket must be root's, peers are checked against root)")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit")
	}

	socket := flagValue(c.Args, "s")
	if socket == "" {
		t.Fatal("no -s SOCKET in args")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.Exec == nil {
		t.Fatal("no exec liveness probe")
	}
	probe := c.LivenessProbe.Exec.Command
	if len(probe) == 0 || probe[0] != "/usr/bin/rootctl" || flagValue(probe[1:], "s") != socket {
		t.Errorf("liveness %v: want /usr/bin/rootctl -s %s ...", probe, socket)
	}

	// Mounts: the socket directory is the only writable one and is the
	// host's PCP socket directory; every other mount is read-only and at
	// the same path as on the host, since rootd's engines use host paths.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	socketDir := path.Dir(socket)
	sawSocket := false
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok || v.HostPath == nil {
			t.Errorf("mount %s: not a hostPath volume", vm.Name)
			continue
		}
		if vm.MountPath == socketDir {
			sawSocket = true
			if vm.ReadOnly {
				t.Error("the socket directory must be writable")
			}
			if v.HostPath.Path != "/var/lib/pcp/pmcd" {
				t.Errorf("socket directory from host %s, want PCP's /var/lib/pcp/pmcd", v.HostPath.Path)
			}
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("mount %s (%s) is writable", vm.Name, vm.MountPath)
		}
		if vm.MountPath != v.HostPath.Path {
			t.Errorf("mount %s: host %s at %s; engines read host paths", vm.Name, v.HostPath.Path, vm.MountPath)
		}
	}
	if !sawSocket {
		t.Errorf("no mount at %s, the socket's directory", socketDir)
	}
	if len(vols) != len(c.VolumeMounts) {
		t.Errorf("%d volumes, %d mounts: unused volumes", len(vols), len(c.VolumeMounts))
	}
}

// waived lists host paths the engines may read that the DaemonSet does not
// mount, and why.
var waived = map[string]string{
	"/usr/share/containers/storage.conf": "Podman's vendor storage.conf, read only when /etc/containers/storage.conf is absent; its defaults are rootd's built-in ones. Not mounted: /usr may be read-only, and hostPath would create it",
	"/tmp":                               "rootless Podman run roots without XDG_RUNTIME_DIR (/tmp/podman-run-UID); mount /tmp read-only to see those",
}

// TestMountsCoverEnginePaths cross-checks the DaemonSet against the
// engines' source: every absolute host path written in engine/ (their
// defaults) must be inside a read-only mount at the same path, be /proc
// (the host's, by hostPID), be overridden in the DaemonSet's args, or be
// waived above with a reason.
func TestMountsCoverEnginePaths(t *testing.T) {
	m := load(t)
	pod := m.ds.Spec.Template.Spec
	c := pod.Containers[0]
	var mounts []string
	for _, vm := range c.VolumeMounts {
		mounts = append(mounts, vm.MountPath)
	}
	paths := enginePaths(t)
	if len(paths) < 10 {
		t.Fatalf("found only %d host paths in engine/: %v", len(paths), paths)
	}
	for p, where := range paths {
		switch {
		case p == "unix:///var/run/docker.sock":
			// The image has no /var/run symlink: the args name the socket
			// under /run, which is mounted.
			host := flagValue(c.Args, "docker-host")
			if !strings.HasPrefix(host, "unix://") || !under(strings.TrimPrefix(host, "unix://"), mounts) {
				t.Errorf("%s (%s): needs --docker-host unix:///run/docker.sock in args, got %q", p, where, host)
			}
		case p == "/var/run/crio/crio.sock":
			// The same for CRI-O's socket: --cri-endpoint flags (all of
			// them replace the defaults) under /run.
			eps := flagValues(c.Args, "cri-endpoint")
			if !slices.Contains(eps, "/run/crio/crio.sock") {
				t.Errorf("%s (%s): needs --cri-endpoint /run/crio/crio.sock in args, got %q", p, where, eps)
			}
			for _, ep := range eps {
				if !under(ep, mounts) {
					t.Errorf("--cri-endpoint %s is not mounted", ep)
				}
			}
		case p == "/proc" || strings.HasPrefix(p, "/proc/"):
			if !pod.HostPID {
				t.Errorf("%s (%s): needs hostPID", p, where)
			}
			if strings.HasPrefix(p, "/proc/net/") && !pod.HostNetwork {
				t.Errorf("%s (%s): needs hostNetwork", p, where)
			}
		case waived[p] != "":
		case under(p, mounts):
		default:
			t.Errorf("engine path %s (%s) is not mounted in the DaemonSet (mount it, or waive it with a reason)", p, where)
		}
	}
	for p := range waived {
		if _, ok := paths[p]; !ok {
			t.Errorf("waiver for %s, which no engine names any more", p)
		}
	}
	// The engines' documented defaults, in case a literal moves into a
	// helper this scan does not see.
	for _, p := range []string{"/run/containerd/containerd.sock", "/var/lib/docker", "/var/lib/containers/storage",
		"/run/containers/storage", "/var/lib/lxc", "/etc/lxc/lxc.conf", "/etc/containers/storage.conf", "/sys/fs/cgroup"} {
		if !under(p, mounts) {
			t.Errorf("%s not mounted", p)
		}
	}
}

var hostRoots = []string{"etc", "var", "run", "usr", "home", "sys", "proc", "tmp", "opt", "srv", "lib"}

// enginePaths returns the string literals in engine/'s non-test Go files
// that are absolute host paths (first component a top-level directory) or
// unix:// addresses, with where each was found.
func enginePaths(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, _ := filepath.Glob("../../engine/*/*.go")
	top, _ := filepath.Glob("../../engine/*.go")
	files = append(files, top...)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			p := strings.TrimPrefix(s, "unix://")
			if !strings.HasPrefix(p, "/") {
				return true
			}
			first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
			if slices.Contains(hostRoots, first) {
				pos := fset.Position(lit.Pos())
				out[s] = strings.TrimPrefix(pos.Filename, "../../") + ":" + strconv.Itoa(pos.Line)
			}
			return true
		})
	}
	return out
}

func under(p string, mounts []string) bool {
	for _, m := range mounts {
		if p == m || strings.HasPrefix(p, strings.TrimSuffix(m, "/")+"/") {
			return true
		}
	}
	return false
}

// flagValue finds -name VALUE, --name VALUE or --name=VALUE in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(a, p+"=") {
				return strings.TrimPrefix(a, p+"=")
			}
		}
	}
	return ""
}

// flagValues returns every value of a repeatable flag.
func flagValues(args []string, name string) []string {
	var out []string
	for i, a := range args {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(args) {
				out = append(out, args[i+1])
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
