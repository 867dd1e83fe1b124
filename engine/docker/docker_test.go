package docker

import (
	"flag"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/engine"
)

func TestParseDockershimName(t *testing.T) {
	tests := []struct {
		name string
		want k8sIdentity
		ok   bool
	}{
		{"k8s_web_web-6d4cf56db6-x2x7q_default_5d2ac2b4-0c1e-4d0e-9a0e-6f3a5b4c3d2e_0",
			k8sIdentity{"web", "web-6d4cf56db6-x2x7q", "default", "5d2ac2b4-0c1e-4d0e-9a0e-6f3a5b4c3d2e"}, true},
		{"k8s_POD_coredns-1_kube-system_uid-1_12", k8sIdentity{"POD", "coredns-1", "kube-system", "uid-1"}, true},
		{"k8s_c_pod.with.dots_ns_u_3", k8sIdentity{"c", "pod.with.dots", "ns", "u"}, true},
		{"k8s_c_p_ns_u", k8sIdentity{}, false},         // no attempt
		{"k8s_c_p_ns_u_1_extra", k8sIdentity{}, false}, // too many fields
		{"k8s__p_ns_u_1", k8sIdentity{}, false},        // empty container
		{"k8s_c_p__u_1", k8sIdentity{}, false},         // empty namespace
		{"k8s_c_p_ns_u_x", k8sIdentity{}, false},       // attempt not a number
		{"k8s_c_p_ns_u_-1", k8sIdentity{}, false},      // negative attempt
		{"K8S_c_p_ns_u_1", k8sIdentity{}, false},       // prefix is exact
		{"web1", k8sIdentity{}, false},
		{"", k8sIdentity{}, false},
		{"k8s", k8sIdentity{}, false},
	}
	for _, tt := range tests {
		got, ok := parseDockershimName(tt.name)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseDockershimName(%q) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWithK8sLabels(t *testing.T) {
	name := "k8s_app_pod-1_ns-a_uid-9_0"
	tests := []struct {
		desc   string
		labels map[string]string
		names  []string
		want   map[string]string
	}{
		{"plain container keeps its labels", map[string]string{"a": "b"}, []string{"web"}, map[string]string{"a": "b"}},
		{"plain container without labels", nil, []string{"web"}, nil},
		{"dockershim name fills the keys", map[string]string{"a": "b"}, []string{name}, map[string]string{
			"a": "b", engine.LabelContainerName: "app", engine.LabelPodName: "pod-1",
			engine.LabelPodNamespace: "ns-a", engine.LabelPodUID: "uid-9"}},
		{"Docker's labels win", map[string]string{engine.LabelPodName: "real-pod"}, []string{name}, map[string]string{
			engine.LabelContainerName: "app", engine.LabelPodName: "real-pod",
			engine.LabelPodNamespace: "ns-a", engine.LabelPodUID: "uid-9"}},
	}
	for _, tt := range tests {
		in := maps.Clone(tt.labels)
		got := withK8sLabels(tt.labels, tt.names)
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, got, tt.want)
		}
		if !maps.Equal(tt.labels, in) {
			t.Errorf("%s: input labels modified: %v", tt.desc, tt.labels)
		}
	}
}

func TestStateMapping(t *testing.T) {
	flags := []struct {
		running, paused, restarting bool
		want                        engine.State
	}{
		{true, false, false, engine.StateRunning},
		{true, true, false, engine.StatePaused},
		{false, true, false, engine.StatePaused},
		{true, false, true, engine.StateRestarting},
		{false, false, true, engine.StateRestarting},
		{false, false, false, engine.StateStopped},
	}
	for _, tt := range flags {
		if got := stateFromFlags(tt.running, tt.paused, tt.restarting); got != tt.want {
			t.Errorf("stateFromFlags(running=%v paused=%v restarting=%v) = %s, want %s",
				tt.running, tt.paused, tt.restarting, got, tt.want)
		}
	}
	statuses := map[string]engine.State{
		"running": engine.StateRunning, "paused": engine.StatePaused, "restarting": engine.StateRestarting,
		"created": engine.StateStopped, "exited": engine.StateStopped, "dead": engine.StateStopped,
		"removing": engine.StateStopped, "": engine.StateStopped, "bogus": engine.StateStopped,
	}
	for status, want := range statuses {
		if got := stateFromStatus(status); got != want {
			t.Errorf("stateFromStatus(%q) = %s, want %s", status, got, want)
		}
	}
}

func TestContainerNames(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"/web"}, []string{"web"}},
		{[]string{"/web", "/app/web-alias"}, []string{"web"}},
		{[]string{"noslash"}, []string{"noslash"}},
		{[]string{"", "/"}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := containerNames(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("containerNames(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConfigure(t *testing.T) {
	d, ok := engine.Lookup(Name)
	if !ok {
		t.Fatal("docker engine not registered")
	}
	tests := []struct {
		desc     string
		args     []string
		env      map[string]string
		wantDir  string // on-disk mode with this directory
		wantHost string // API mode with this host
	}{
		{"defaults", nil, nil, "", defaultHost},
		{"DOCKER_HOST", nil, map[string]string{"DOCKER_HOST": "unix:///run/other.sock"}, "", "unix:///run/other.sock"},
		{"flag beats DOCKER_HOST", []string{"--docker-host=tcp://10.0.0.1:2375"},
			map[string]string{"DOCKER_HOST": "unix:///run/other.sock"}, "", "tcp://10.0.0.1:2375"},
		{"PCP_DOCKER_DIR", nil, map[string]string{"PCP_DOCKER_DIR": "/qa/docker"}, "/qa/docker", ""},
		{"--docker-dir", []string{"--docker-dir=/srv/docker"}, map[string]string{"PCP_DOCKER_DIR": "/qa/docker"}, "/srv/docker", ""},
		// flag (or file) > environment: an explicitly set host wins over
		// PCP_DOCKER_DIR, as over DOCKER_HOST.
		{"--docker-host beats PCP_DOCKER_DIR", []string{"--docker-host=unix:///run/mine.sock"},
			map[string]string{"PCP_DOCKER_DIR": "/qa/docker"}, "", "unix:///run/mine.sock"},
		{"--docker-host beats PCP_DOCKER_DIR and DOCKER_HOST", []string{"--docker-host=unix:///run/mine.sock"},
			map[string]string{"PCP_DOCKER_DIR": "/qa/docker", "DOCKER_HOST": "unix:///run/other.sock"}, "", "unix:///run/mine.sock"},
		{"PCP_DOCKER_DIR beats DOCKER_HOST", nil,
			map[string]string{"PCP_DOCKER_DIR": "/qa/docker", "DOCKER_HOST": "unix:///run/other.sock"}, "/qa/docker", ""},
		{"--docker-dir beats --docker-host", []string{"--docker-dir=/srv/docker", "--docker-host=unix:///run/mine.sock"},
			nil, "/srv/docker", ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			openFn := d.Configure(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			log, _ := logBuffer()
			e, err := openFn(engine.Env{Log: log, Getenv: func(k string) string { return tt.env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() != Name {
				t.Errorf("Name() = %q", e.Name())
			}
			switch e := e.(type) {
			case *diskEngine:
				if tt.wantDir == "" || e.disk.dir != tt.wantDir || e.disk.verifyPIDs {
					t.Errorf("on-disk engine for %s (verify %v), want dir %q host %q", e.disk.dir, e.disk.verifyPIDs, tt.wantDir, tt.wantHost)
				}
			case *apiEngine:
				defer e.Close()
				if tt.wantHost == "" || e.host != tt.wantHost {
					t.Errorf("API engine for %s, want dir %q host %q", e.host, tt.wantDir, tt.wantHost)
				}
				if remote := e.host[:4] == "tcp:"; (e.fallback == nil) != remote {
					t.Errorf("host %s: fallback %v", e.host, e.fallback)
				}
			default:
				t.Fatalf("unexpected engine type %T", e)
			}
		})
	}
}

func TestBadHost(t *testing.T) {
	log, _ := logBuffer()
	if _, err := open(engine.Env{Log: log, Getenv: func(string) string { return "" }}, "not a url", ""); err == nil {
		t.Error("open with a malformed host succeeded")
	}
}

var _ engine.Watcher = (*apiEngine)(nil)
var _ engine.Watcher = (*diskEngine)(nil)

func TestCgroupMarks(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for path, want := range map[string]bool{
		"docker/" + id:                                   true,
		"system.slice/docker-" + id + ".scope":           true,
		"kubepods/burstable/pod1/" + id:                  true,
		"kubepods.slice/x.slice/docker-" + id + ".scope": true,
		"docker/" + id[:12]:                              false,
		"system.slice/containerd.service":                false,
		"machine.slice/libpod-" + id + ".scope":          false,
	} {
		if got := engine.CgroupMatches(path, cgroupMarks(id)); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}
