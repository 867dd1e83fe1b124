package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/internal/manpage"
	"github.com/rootd-project/rootd/wire"
)

const (
	webID   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dupAID  = "aaaa456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dupBID  = "bbbb456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	evilRaw = "evil\x1b[2J\nname"
)

func newFake() *fakeDaemon {
	return &fakeDaemon{
		containers: []Info{
			{Engine: "docker", ID: webID, Names: []string{"web"}, State: "running", PID: 42,
				Labels: map[string]string{"app": "shop", "tier": "front"}, Cgroup: "system.slice/docker-0123.scope", Hostname: "web-host"},
			{Engine: "podman", ID: "cafe", Names: []string{"db"}, State: "stopped", Labels: map[string]string{"app": "shop"}},
			{Engine: "docker", ID: dupAID, Names: []string{"dup"}, State: "running", PID: 7},
			{Engine: "podman", ID: dupBID, Names: []string{"dup"}, State: "running", PID: 8},
			{Engine: "containerd", ID: "k8s-pod", Names: []string{"default/web-0/nginx"}, State: "running", PID: 99, Namespace: "k8s.io",
				Labels: map[string]string{"io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.name": "web-0", "io.cri-containerd.kind": "container"}},
			{Engine: "lxc", ID: "evil", Names: []string{evilRaw}, State: "paused", PID: 5},
		},
		status: Status{Version: "rootd 0.9.0", Started: time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC), Ready: true, Containers: 6,
			Engines: []EngineStatus{
				{Name: "docker", Health: "available", Containers: 2, States: map[string]int{"running": 2}},
				{Name: "lxc", Health: "failing", Error: "lxc-info: exit 1", LastError: time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC), Containers: 1},
			}},
		byPID: map[int]string{1234: "box"},
		pidErr: map[int]error{
			1:      wire.StatusError(wire.StatusFromErrno(syscall.EACCES)),
			999999: wire.StatusError(wire.StatusFromErrno(syscall.ESRCH)),
		},
	}
}

// Every exit status, each from a command that produces it.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		setup  func(*fakeDaemon)
		euid   int
		code   int
		stderr string // substring
	}{
		{name: "ok", args: []string{"pid", "web"}, code: exitOK},
		{name: "other error: rootd may not read pid 1", args: []string{"hostname", "--pid", "1"}, code: exitError, stderr: "rootd may not read this process's UTS namespace"},
		{name: "in-process as non-root", args: []string{"--in-process", "ls"}, euid: 1000, code: exitError, stderr: "needs root"},
		{name: "usage: no command", args: nil, code: exitUsage, stderr: "no command given"},
		{name: "usage: unknown command", args: []string{"lss"}, code: exitUsage, stderr: `unknown command "lss" (did you mean ls?)`},
		{name: "usage: unknown flag", args: []string{"ls", "--bogus"}, code: exitUsage, stderr: "unknown flag: --bogus"},
		{name: "usage: stray argument to ls", args: []string{"ls", "extra"}, code: exitUsage, stderr: `ls takes no arguments, got "extra"`},
		{name: "usage: stray argument to status", args: []string{"status", "x"}, code: exitUsage},
		{name: "usage: two names", args: []string{"pid", "a", "b"}, code: exitUsage, stderr: "pid wants exactly 1 NAME"},
		{name: "usage: no name", args: []string{"cgroup"}, code: exitUsage},
		{name: "usage: hostname NAME and --pid", args: []string{"hostname", "web", "--pid", "3"}, code: exitUsage, stderr: "not both"},
		{name: "usage: hostname --pid 0 NAME", args: []string{"hostname", "--pid", "0", "web"}, code: exitUsage, stderr: "not both"},
		{name: "usage: hostname --pid 0", args: []string{"hostname", "--pid", "0"}, code: exitUsage, stderr: "--pid 0: want a PID from 1 to 2147483647"},
		{name: "usage: hostname --pid 2^32+1", args: []string{"hostname", "--pid", "4294967297"}, code: exitUsage, stderr: "--pid 4294967297: want a PID"},
		{name: "usage: hostname --pid -1", args: []string{"hostname", "--pid", "-1"}, code: exitUsage},
		{name: "usage: which 2^32+1", args: []string{"which", "4294967297"}, code: exitUsage, stderr: `bad PID "4294967297"`},
		{name: "usage: bad output", args: []string{"ls", "-o", "yaml"}, code: exitUsage, stderr: "want one of table, wide, json, name"},
		{name: "usage: status -o wide", args: []string{"status", "-o", "wide"}, code: exitUsage},
		{name: "usage: bad filter key", args: []string{"ls", "--filter", "colour=red"}, code: exitUsage, stderr: `unknown key "colour"`},
		{name: "usage: filter without =", args: []string{"ls", "--filter", "engine"}, code: exitUsage},
		{name: "usage: bad state filter", args: []string{"ls", "--filter", "state=up"}, code: exitUsage},
		{name: "usage: bad glob", args: []string{"ls", "--filter", "name=[x"}, code: exitUsage},
		{name: "usage: -q with -o", args: []string{"ls", "-q", "-o", "json"}, code: exitUsage},
		{name: "usage: --json and -o table", args: []string{"ls", "--json", "-o", "wide"}, code: exitUsage},
		{name: "usage: which bad pid", args: []string{"which", "12x"}, code: exitUsage, stderr: `bad PID "12x"`},
		{name: "usage: --engines without --in-process", args: []string{"--engines", "docker", "ls"}, code: exitUsage, stderr: "--engines selects the engines read with --in-process"},
		{name: "usage: unknown engine in-process", args: []string{"--in-process", "--engines", "dockr", "ls"}, code: exitUsage, stderr: `unknown engine "dockr"`},
		{name: "usage: pid --in-process", args: []string{"--in-process", "pid", "web"}, code: exitUsage, stderr: "always asks rootd"},
		{name: "usage: bad timeout", args: []string{"--timeout", "0s", "ls"}, code: exitUsage},
		{name: "usage: explicit config missing", args: []string{"--config", "/nonexistent/rootd.conf", "ls"}, code: exitUsage, stderr: "/nonexistent/rootd.conf"},
		{name: "not found", args: []string{"pid", "nosuch"}, code: exitNotFound, stderr: `"nosuch": no such container`},
		{name: "not found: resolve", args: []string{"resolve", "nosuch"}, code: exitNotFound},
		{name: "not found: no such process", args: []string{"hostname", "--pid", "999999"}, code: exitNotFound, stderr: "pid 999999: no such process"},
		{name: "not found: which", args: []string{"which", "31337"}, code: exitNotFound, stderr: "in no container rootd knows"},
		{name: "ambiguous: candidates from DESCRIBE", args: []string{"pid", "dup"}, code: exitAmbiguous,
			stderr: `"dup" is ambiguous: matches docker:aaaa456789ab (dup), podman:bbbb456789ab (dup)`},
		{name: "ambiguous: resolve", args: []string{"resolve", "dup"}, code: exitAmbiguous, stderr: "docker:aaaa456789ab"},
		{name: "ambiguous without DESCRIBE, not root", args: []string{"cgroup", "dup"}, euid: 1000,
			setup: func(f *fakeDaemon) { f.listErr = fmt.Errorf("no LIST: %w", errors.ErrUnsupported) },
			code:  exitAmbiguous, stderr: `"dup" is ambiguous: it matches several containers`},
		{name: "not running", args: []string{"hostname", "db"}, code: exitNotRunning, stderr: `"db": container is not running`},
		{name: "refused", args: []string{"pid", "web"}, setup: func(f *fakeDaemon) { f.dialErr = classifyDial("/s", io.EOF) },
			code: exitRefused, stderr: "closed the connection before greeting: it refuses this user"},
		{name: "unreachable", args: []string{"ls"}, setup: func(f *fakeDaemon) { f.dialErr = classifyDial("/s", syscall.ENOENT) },
			code: exitUnreachable, stderr: "rootd is not running"},
		{name: "unsupported", args: []string{"ls"}, setup: func(f *fakeDaemon) { f.listErr = unsupportedErr() },
			code: exitUnsupported, stderr: "--in-process"},
		{name: "unsupported: status", args: []string{"status"}, setup: func(f *fakeDaemon) { f.listErr = unsupportedErr() }, code: exitUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			if tc.setup != nil {
				tc.setup(f)
			}
			r := runCtl(t, f, tc.euid, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
			if tc.code == exitUsage && !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("usage error without the pointer to --help: %q", r.stderr)
			}
			if tc.code != exitOK && strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 && tc.name != "usage: no command" {
				t.Errorf("error is more than a line (and the --help pointer): %q", r.stderr)
			}
		})
	}
}

func unsupportedErr() error {
	return fmt.Errorf("the daemon cannot list containers: it is PCP's pmdaroot or an older rootd; as root, use --in-process: %w", errors.ErrUnsupported)
}

// The old message blamed the socket's access control for a reply that was
// rootd's own failure to enter a namespace.
func TestHostnamePIDPermissionIsNotTheSocket(t *testing.T) {
	r := runCtl(t, newFake(), 0, "hostname", "--pid", "1")
	if strings.Contains(r.stderr, "allowed to use") || !strings.Contains(r.stderr, "/proc/1/ns/uts") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestCommandsOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // lines of stdout, exactly
		euid int      // 1000 unless set; root (-1 here) sees every label
	}{
		{"pid", []string{"pid", "web"}, []string{"42"}, 0},
		{"pid by ID prefix", []string{"pid", "0123"}, []string{"42"}, 0},
		{"cgroup", []string{"cgroup", "web"}, []string{"system.slice/docker-0123.scope"}, 0},
		{"hostname", []string{"hostname", "web"}, []string{"web-host"}, 0},
		{"hostname --pid", []string{"hostname", "--pid", "1234"}, []string{"box"}, 0},
		{"ls -q", []string{"ls", "-q"}, []string{"k8s-pod", dupAID, webID, "evil", "cafe", dupBID}, 0},
		{"ls -o name escapes", []string{"ls", "-o", "name"}, []string{"default/web-0/nginx", "dup", "web", `"evil\x1b[2J\nname"`, "db", "dup"}, 0},
		{"filter engine", []string{"ls", "-q", "--filter", "engine=podman"}, []string{"cafe", dupBID}, 0},
		{"filter engine, two values", []string{"ls", "-q", "--filter", "engine=podman", "--filter", "engine=lxc"}, []string{"evil", "cafe", dupBID}, 0},
		{"filter state", []string{"ls", "-q", "--filter", "state=stopped"}, []string{"cafe"}, 0},
		{"filter engine and state", []string{"ls", "-q", "--filter", "engine=docker", "--filter", "state=running"}, []string{dupAID, webID}, 0},
		{"filter name prefix", []string{"ls", "-o", "name", "--filter", "name=we"}, []string{"web"}, 0},
		{"filter name prefix of ID", []string{"ls", "-q", "--filter", "name=caf"}, []string{"cafe"}, 0},
		{"filter name glob", []string{"ls", "-o", "name", "--filter", "name=default/*/nginx"}, []string{"default/web-0/nginx"}, 0},
		{"filter name glob is whole", []string{"ls", "-o", "name", "--filter", "name=d?"}, []string{"db"}, 0},
		{"filter label key", []string{"ls", "-o", "name", "--filter", "label=tier"}, []string{"web"}, -1},
		{"filter label key=value", []string{"ls", "-o", "name", "--filter", "label=app=shop"}, []string{"web", "db"}, -1},
		{"filter label wrong value", []string{"ls", "-o", "name", "--filter", "label=app=other"}, nil, -1},
		{"filter label, not root", []string{"ls", "-o", "name", "--filter", "label=io.kubernetes.pod.namespace=default"}, []string{"default/web-0/nginx"}, 0},
		{"resolve table", []string{"resolve", "web"}, []string{
			"engine:     docker",
			"id:         " + webID,
			"names:      web",
			"state:      running",
			"pid:        42",
			"namespace:  -",
			"cgroup:     system.slice/docker-0123.scope",
			"hostname:   web-host",
			"labels:     (withheld: root only)"}, 0},
		{"resolve table, root", []string{"resolve", "-o", "wide", "web"}, []string{
			"engine:     docker",
			"id:         " + webID,
			"names:      web",
			"state:      running",
			"pid:        42",
			"namespace:  -",
			"cgroup:     system.slice/docker-0123.scope",
			"hostname:   web-host",
			"labels:     app=shop",
			"            tier=front"}, -1},
		{"resolve, identity labels only", []string{"resolve", "default/web-0/nginx"}, []string{
			"engine:     containerd",
			"id:         k8s-pod",
			"names:      default/web-0/nginx",
			"state:      running",
			"pid:        99",
			"namespace:  k8s.io",
			"cgroup:     -",
			"hostname:   -",
			"labels:     io.kubernetes.pod.name=web-0",
			"            io.kubernetes.pod.namespace=default",
			"            (others withheld: root only)"}, 0},
		{"resolve -o name", []string{"resolve", "-o", "name", "0123456789"}, []string{"web"}, 0},
		{"which", []string{"which", "-o", "name", "99"}, []string{"default/web-0/nginx"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			euid := 1000
			if tc.euid < 0 {
				euid = 0
			}
			r := runCtl(t, newFake(), euid, tc.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if r.stdout == "" {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("stdout:\n%s\nwant:\n%s", r.stdout, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestLsTables(t *testing.T) {
	r := runCtl(t, newFake(), 1000, "ls")
	want := `ENGINE      ID            NAME                 STATE    PID  CGROUP
containerd  k8s-pod       default/web-0/nginx  running  99   -
docker      aaaa456789ab  dup                  running  7    -
docker      0123456789ab  web                  running  42   system.slice/docker-0123.scope
lxc         evil          "evil\x1b[2J\nname"  paused   5    -
podman      cafe          db                   stopped  -    -
podman      bbbb456789ab  dup                  running  8    -
`
	if r.code != 0 || r.stdout != want {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	// A listing carries no hostnames (rootd's LIST has none): no HOSTNAME
	// column, which would only ever be empty. LABELS counts the labels and
	// says when rootd withheld some.
	r = runCtl(t, newFake(), 1000, "ls", "-o", "wide", "--filter", "engine=docker", "--filter", "engine=containerd")
	want = `ENGINE      ID                                                                NAMES                STATE    PID  NAMESPACE  CGROUP                          LABELS
containerd  k8s-pod                                                           default/web-0/nginx  running  99   k8s.io     -                               2+withheld
docker      aaaa456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  dup                  running  7    -          -                               -
docker      0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  web                  running  42   -          system.slice/docker-0123.scope  withheld
`
	if r.code != 0 || r.stdout != want {
		t.Fatalf("ls -o wide: exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	r = runCtl(t, newFake(), 0, "ls", "-o", "wide", "--filter", "name=web")
	if !strings.Contains(r.stdout, "system.slice/docker-0123.scope  2\n") || strings.Contains(r.stdout, "HOSTNAME") || strings.Contains(r.stdout, "web-host") {
		t.Errorf("ls -o wide as root:\n%s", r.stdout)
	}
	if strings.ContainsAny(r.stdout, "\x1b") {
		t.Error("a control character reached the terminal")
	}
}

// JSON carries the names as they are (JSON escapes them itself), with every
// field of the daemon's answer.
func TestJSONOutput(t *testing.T) {
	f := newFake()
	r := runCtl(t, f, 1000, "ls", "-o", "json")
	var got []Info
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v:\n%s", r.code, err, r.stdout)
	}
	if len(got) != len(f.containers) {
		t.Fatalf("%d containers, want %d", len(got), len(f.containers))
	}
	found := false
	for _, c := range got {
		found = found || (len(c.Names) == 1 && c.Names[0] == evilRaw)
	}
	if !found {
		t.Errorf("the raw name did not survive JSON: %s", r.stdout)
	}
	// The old --json still works, for one container too.
	r = runCtl(t, f, 0, "resolve", "--json", "web")
	var one Info
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || one.Labels["tier"] != "front" || one.Hostname != "web-host" || one.LabelsRedacted {
		t.Fatalf("resolve --json as root: %+v, %v", one, err)
	}
	// A user other than root is told the labels were withheld.
	r = runCtl(t, f, 1000, "resolve", "--json", "web")
	if !strings.Contains(r.stdout, `"labels_redacted": true`) || strings.Contains(r.stdout, "tier") {
		t.Fatalf("resolve --json as 1000:\n%s", r.stdout)
	}
	r = runCtl(t, f, 1000, "ls", "-o", "json")
	if strings.Count(r.stdout, `"labels_redacted": true`) != 3 || strings.Contains(r.stdout, `"hostname"`) {
		t.Fatalf("ls -o json as 1000: want labels_redacted on the three labelled containers, no hostnames:\n%s", r.stdout)
	}
	// An empty list is [], not null.
	r = runCtl(t, f, 1000, "ls", "-o", "json", "--filter", "engine=none")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("empty ls -o json = %q", r.stdout)
	}
}

func TestStatus(t *testing.T) {
	r := runCtl(t, newFake(), 1000, "status")
	for _, s := range []string{"version:     rootd 0.9.0", "ready:       yes", "containers:  6",
		"docker  available  2           running=2", "lxc     failing    1", "2026-12-04T07:00:00Z lxc-info: exit 1"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("status lacks %q:\n%s", s, r.stdout)
		}
	}
	r = runCtl(t, newFake(), 1000, "status", "-o", "json")
	var st Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || !st.Ready || len(st.Engines) != 2 || st.Engines[1].Error != "lxc-info: exit 1" {
		t.Fatalf("status -o json: %+v %v", st, err)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "ls"}, {"ls", "--help"}, {"-h"}} {
		r := runCtl(t, newFake(), 1000, args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q; want usage on stdout", args, r.code, len(r.stdout), r.stderr)
		}
	}
	r := runCtl(t, newFake(), 1000, "--help")
	for _, s := range []string{"Exit status:", "7  rootd unreachable", "/etc/rootd/rootd.conf", "NAMESPACE/POD/CONTAINER"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("--help lacks %q", s)
		}
	}
	r = runCtl(t, newFake(), 1000, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "rootctl ") || !strings.Contains(r.stdout, "commit ") {
		t.Fatalf("--version: exit %d, %q", r.code, r.stdout)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCtl(t, newFake(), 1000, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "rootctl") || len(r.stdout) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes, %s", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	// Names come from the daemon's list; one that is not safe to type back
	// (the escape sequence) is left out.
	r := runCtl(t, newFake(), 1000, "__complete", "pid", "")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if got := strings.Join(lines[:len(lines)-1], ","); got != "db,default/web-0/nginx,dup,web" {
		t.Errorf("completions %q:\n%s", got, r.stdout)
	}
	r = runCtl(t, newFake(), 1000, "__complete", "resolve", "d")
	if !strings.Contains(r.stdout, "dup\n") || strings.Contains(r.stdout, "web\n") {
		t.Errorf("completions of d: %s", r.stdout)
	}
	// A daemon that cannot list completes nothing, quietly.
	f := newFake()
	f.listErr = unsupportedErr()
	r = runCtl(t, f, 1000, "__complete", "pid", "")
	if r.code != 0 || strings.Contains(r.stdout, "web") {
		t.Errorf("completion without LIST: %d %q", r.code, r.stdout)
	}
	r = runCtl(t, newFake(), 1000, "__complete", "ls", "--filter", "state=")
	if !strings.Contains(r.stdout, "state=running") {
		t.Errorf("--filter completion: %s", r.stdout)
	}
}

// The configuration file sets the socket and the timeout; -s wins over it;
// rootd's section and keys are accepted and left alone; a typo is named.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.conf", "socket = \"/from/file\"\nengines = [\"docker\"]\n[rootctl]\ntimeout = \"3s\"\n[rootd]\nlog-level = \"debug\"\nallow-uid = [\"pcp\"]\n[docker]\nhost = \"unix:///x\"\n")
	f := newFake()
	if r := runCtl(t, f, 1000, "--config", good, "pid", "web"); r.code != 0 || f.dialed[0] != "/from/file" {
		t.Fatalf("exit %d %s, dialed %v", r.code, r.stderr, f.dialed)
	}
	f = newFake()
	if r := runCtl(t, f, 1000, "--config", good, "-s", "/flag", "pid", "web"); r.code != 0 || f.dialed[0] != "/flag" {
		t.Fatalf("exit %d %s, dialed %v", r.code, r.stderr, f.dialed)
	}
	bad := write("bad.conf", "[docker]\nhots = \"x\"\n")
	r := runCtl(t, newFake(), 1000, "--config", bad, "pid", "web")
	if r.code != exitUsage || !strings.Contains(r.stderr, bad+`: unknown key "docker.hots"`) {
		t.Fatalf("exit %d, %q", r.code, r.stderr)
	}
	// The default file's absence is fine: the app's default path is
	// replaced by one that does not exist, as on a host without the file.
	var out, errOut strings.Builder
	a := newApp(&out, &errOut)
	a.configPath = filepath.Join(dir, "absent.conf")
	a.euid = func() int { return 1000 }
	a.dial = func(context.Context, string) (daemon, error) { return newFake(), nil }
	root := a.newRootCommand()
	root.PersistentFlags().Lookup("config").DefValue = a.configPath
	_ = root.PersistentFlags().Set("config", a.configPath)
	root.PersistentFlags().Lookup("config").Changed = false
	root.SetArgs([]string{"pid", "web"})
	if err := root.Execute(); err != nil || out.String() != "42\n" {
		t.Fatalf("absent default file: %v, %q", err, out.String())
	}
}

// In-process mode reads the engines itself: the static engine from a file.
func TestInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "static.json")
	js := `[{"engine":"static","id":"s1","names":["one"],"state":"stopped"},
	        {"engine":"static","id":"s2","names":["two"],"state":"stopped"},
	        {"engine":"static","id":"s3","names":["two"],"state":"stopped"}]`
	if err := os.WriteFile(path, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--in-process", "--engines", "static", "--static-file", path}
	f := newFake()
	r := runCtl(t, f, 0, append(base, "ls", "-q")...)
	if r.code != 0 || r.stdout != "s1\ns2\ns3\n" || len(f.dialed) != 0 {
		t.Fatalf("ls -q in-process: exit %d %q %s; dialed %v", r.code, r.stdout, r.stderr, f.dialed)
	}
	r = runCtl(t, f, 0, append(base, "resolve", "two")...)
	if r.code != exitAmbiguous || !strings.Contains(r.stderr, "static:s2 (two), static:s3 (two)") && !strings.Contains(r.stderr, "static:s3 (two), static:s2 (two)") {
		t.Fatalf("resolve two: exit %d %q", r.code, r.stderr)
	}
	// A stopped container is printed and the exit status says it is not
	// running, as through the socket.
	r = runCtl(t, f, 0, append(base, "resolve", "-o", "json", "one")...)
	var c Info
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.ID != "s1" || c.State != "stopped" || r.code != exitNotRunning {
		t.Fatalf("resolve one: exit %d, %+v %v %s", r.code, c, err, r.stderr)
	}
	r = runCtl(t, f, 0, append(base, "status", "-o", "json")...)
	var st Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Containers != 3 || len(st.Engines) != 1 || st.Engines[0].States["stopped"] != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// classifyDial against real sockets: each failure to reach rootd gets its
// own exit status and a message naming the cause.
func TestDialFailures(t *testing.T) {
	dir := t.TempDir()
	// A server that accepts and closes at once, as rootd does with a peer
	// whose credentials it refuses.
	refusing := filepath.Join(dir, "refusing.sock")
	ln, err := net.Listen("unix", refusing)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A socket file nobody listens on: rootd died and left it.
	stale := filepath.Join(dir, "stale.sock")
	l2, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l2.(*net.UnixListener).SetUnlinkOnClose(false)
	l2.Close()
	// A server that never greets.
	silent := filepath.Join(dir, "silent.sock")
	l3, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()

	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{refusing, exitRefused, "closed the connection before greeting"},
		{stale, exitUnreachable, "nothing listens on"},
		{filepath.Join(dir, "absent.sock"), exitUnreachable, "no socket at"},
		{silent, exitUnreachable, "did not greet within --timeout"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := dialSocket(ctx, tc.path)
		cancel()
		if exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v (exit %d); want exit %d and %q", filepath.Base(tc.path), err, exitCode(err), tc.code, tc.msg)
		}
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{syscall.EACCES, exitRefused},
		{syscall.ECONNRESET, exitRefused},
		{syscall.ENOTSOCK, exitUnreachable},
		{errors.New("something else"), exitError},
	} {
		if got := exitCode(classifyDial("/s", tc.err)); got != tc.code {
			t.Errorf("classifyDial(%v): exit %d, want %d", tc.err, got, tc.code)
		}
	}
}

// The man page comes from the command tree: every command and flag.
func TestManpageJSON(t *testing.T) {
	r := runCtl(t, newFake(), 1000, manpageCmd)
	var h manpage.Help
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	var cmds []string
	for _, c := range h.Commands {
		cmds = append(cmds, strings.Fields(c.Usage)[0])
	}
	for _, want := range []string{"pid", "cgroup", "hostname", "ls", "resolve", "which", "status", "completion"} {
		if !strings.Contains(" "+strings.Join(cmds, " ")+" ", " "+want+" ") {
			t.Errorf("man page lacks command %s (has %v)", want, cmds)
		}
	}
	var flags []string
	for _, f := range h.Flags {
		flags = append(flags, f.Name)
	}
	for _, want := range []string{"socket", "config", "timeout", "in-process", "engines", "docker-host", "cri-endpoint", "version"} {
		if !strings.Contains(" "+strings.Join(flags, " ")+" ", " "+want+" ") {
			t.Errorf("man page lacks --%s", want)
		}
	}
	page := manpage.Page{Name: "rootctl", Section: "1", Help: &h}
	if roff := page.Roff(); !strings.Contains(roff, ".SH EXIT STATUS") || !strings.Contains(roff, `\-o, \-\-output`) {
		t.Errorf("roff lacks exit status or GNU options:\n%s", roff)
	}
}

// Every setting the shipped file shows, uncommented, is accepted by rootctl
// (its own, the engines', and rootd's section skipped).
func TestShippedConfigKeys(t *testing.T) {
	data, err := os.ReadFile("../../packaging/rootd.conf")
	if err != nil {
		t.Fatal(err)
	}
	uncommented := regexp.MustCompile(`(?m)^#([a-z][a-z-]* = )`).ReplaceAllString(string(data), "$1")
	for name, text := range map[string]string{"shipped": string(data), "uncommented": uncommented} {
		path := filepath.Join(t.TempDir(), "rootd.conf")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		f := newFake()
		if r := runCtl(t, f, 1000, "--config", path, "status"); r.code != 0 {
			t.Errorf("%s: exit %d: %s", name, r.code, r.stderr)
		}
	}
}

// The fake answers DESCRIBE of a stopped container as rootd does (ESRCH
// with the container); resolve prints it, every known field, and exits 5.
func TestResolveNotRunning(t *testing.T) {
	r := runCtl(t, newFake(), 0, "resolve", "db")
	want := `engine:     podman
id:         cafe
names:      db
state:      stopped
pid:        -
namespace:  -
cgroup:     -
hostname:   -
labels:     app=shop
`
	if r.code != exitNotRunning || r.stdout != want || !strings.Contains(r.stderr, `"db": container is not running`) {
		t.Fatalf("resolve db: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
}

// ls names the engines that are not available on stderr, whichever the
// source; the listing itself stays on stdout and the exit status 0.
func TestLsWarnsUnhealthyEngines(t *testing.T) {
	r := runCtl(t, newFake(), 1000, "ls", "-q")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: engine lxc is failing: lxc-info: exit 1") || strings.Contains(r.stderr, "docker") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// A label filter on a key rootd withholds from users other than root is
// said to be so on stderr (exit 0); on an identity key, or for root, not.
func TestLabelFilterWarning(t *testing.T) {
	for _, tc := range []struct {
		euid   int
		filter string
		warn   bool
	}{
		{1000, "label=app=shop", true},
		{1000, "label=tier", true},
		{1000, "label=io.kubernetes.pod.namespace=default", false},
		{0, "label=app=shop", false},
	} {
		r := runCtl(t, newFake(), tc.euid, "ls", "-q", "--filter", tc.filter)
		warned := strings.Contains(r.stderr, "only the Kubernetes identity labels")
		if r.code != 0 || warned != tc.warn {
			t.Errorf("uid %d --filter %s: exit %d, stderr %q; want warning %v", tc.euid, tc.filter, r.code, r.stderr, tc.warn)
		}
	}
}

// A CRI container's only name is its name within its pod: two pods' "nginx"
// are two containers, so NAME shows NAMESPACE/POD/CONTAINER, as
// containers.name does, and --filter name= and -o name use it too.
func TestLsKubernetesDisplayName(t *testing.T) {
	k8s := func(pod string) map[string]string {
		return map[string]string{"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": pod,
			"io.kubernetes.container.name": "nginx", "io.kubernetes.pod.uid": pod + "-uid"}
	}
	f := &fakeDaemon{containers: []Info{
		{Engine: "cri", ID: "c1", Names: []string{"nginx"}, State: "running", PID: 11, Labels: k8s("web-0")},
		{Engine: "cri", ID: "c2", Names: []string{"nginx"}, State: "running", PID: 12, Labels: k8s("web-1")},
	}}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ls"}, "ENGINE  ID  NAME              STATE    PID  CGROUP\ncri     c1  shop/web-0/nginx  running  11   -\ncri     c2  shop/web-1/nginx  running  12   -\n"},
		{[]string{"ls", "-o", "name", "--filter", "name=shop/web-1/*"}, "shop/web-1/nginx\n"},
	} {
		if r := runCtl(t, f, 1000, tc.args...); r.code != 0 || r.stdout != tc.want {
			t.Errorf("rootctl %q: exit %d, stdout:\n%s\nwant:\n%s", tc.args, r.code, r.stdout, tc.want)
		}
	}
}
