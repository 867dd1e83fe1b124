package docker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/internal/fixtures"
)

// fixtureRoot unpacks a PCP QA fixture into a temporary directory and
// returns the Docker data root inside it (DIR/var/lib/docker).
func fixtureRoot(t *testing.T, name string) string {
	t.Helper()
	path, err := fixtures.PCPQA(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	dest := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("fixture %s: %v", name, err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("fixture %s: entry %q leaves the archive", name, h.Name)
		}
		target := filepath.Join(dest, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dest, "var/lib/docker")
}

// logBuffer returns a logger whose warnings tests can read.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func byID(cs []engine.Container) map[string]engine.Container {
	m := map[string]engine.Container{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

type wantContainer struct {
	id    string
	names []string
	state engine.State
	pid   int
}

func TestFixtures(t *testing.T) {
	tests := []struct {
		fixture string
		want    []wantContainer
		labels  map[string]map[string]string // id -> labels that must be present
	}{
		{
			fixture: "containers-docker-1.2.0-root-002.tgz", // legacy config.json
			want: []wantContainer{
				{"781d21edbb014736f7fb4e1412ee55c5564c91ce0647be4879a7c547e6ebc1af", []string{"backstabbing_wright"}, engine.StateStopped, 0},
				{"d4999f7c6d639c837c03634ab2bc51daa5b35fce1bf1e9f56ee9f8342fafa2ec", []string{"jolly_tesla"}, engine.StateStopped, 0},
			},
		},
		{
			fixture: "containers-docker-1.3.2-root-001.tgz", // legacy config.json, one paused
			want: []wantContainer{
				{"252b56e79da57371dd0fe0fd1069418b761a06c42304d5c74b873f3fb9386d5f", []string{"desperate_turing"}, engine.StatePaused, 0},
				{"2cb8e83aa13ae05b7d11146ed0daae3607cd1a73d793544e06411fd8f4afc255", []string{"jolly_sinoussi"}, engine.StateRunning, 32471},
				{"d2e89f8c107e1b7ae899603469cd524618897d52197fbbd6aaf961454202f23e", []string{"dreamy_elion"}, engine.StateRunning, 9579},
			},
		},
		{
			fixture: "containers-docker-1.5.0-root-003.tgz", // no Restarting key at all
			want: []wantContainer{
				{"c2a1bd412ad4206ced8107b9faa1f9b244bd873dcced6f909dbf72682662b7d9", []string{"jovial_lovelace"}, engine.StateRunning, 18720},
			},
		},
		{
			fixture: "containers-docker-1.10.3-root-004.tgz", // config.v2.json
			want: []wantContainer{
				{"e137109040f53c67031325695ae541a3bf383c7b015af0fd718a412cc0f32da1", []string{"tender_galileo"}, engine.StateStopped, 0},
				{"e68c65472ffef4c1691c6c5d71327ce816231b2338753973550e7f5eda995fc9", []string{"happy_hoover"}, engine.StateStopped, 0},
			},
		},
		{
			fixture: "containers-docker-1.10.3-root-005.tgz", // one container without a Name
			want: []wantContainer{
				{"e137109040f53c67031325695ae541a3bf383c7b015af0fd718a412cc0f32da1", nil, engine.StateStopped, 0},
				{"e68c65472ffef4c1691c6c5d71327ce816231b2338753973550e7f5eda995fc9", []string{"happy_hoover"}, engine.StateStopped, 0},
			},
		},
		{
			fixture: "containers-docker-1.12.6-root-006.tgz", // Kubernetes (dockershim) container
			want: []wantContainer{
				{"a02d125b564534172bd172c340b45511010cd7805cbd4d715d81e1491474e01c",
					[]string{"k8s_shipshift-client_shipshift-client-client-cfme.yaml-11-3cq70_dh-shipshift-staging_43e1c477-180a-11e8-8537-d4bed9f4c83b_0"},
					engine.StateRunning, 72769},
			},
			labels: map[string]map[string]string{
				"a02d125b564534172bd172c340b45511010cd7805cbd4d715d81e1491474e01c": {
					engine.LabelContainerName:   "shipshift-client",
					engine.LabelPodName:         "shipshift-client-client-cfme.yaml-11-3cq70",
					engine.LabelPodNamespace:    "dh-shipshift-staging",
					engine.LabelPodUID:          "43e1c477-180a-11e8-8537-d4bed9f4c83b",
					"io.kubernetes.docker.type": "container",
				},
			},
		},
		{
			fixture: "containers-docker-titan-root-007.tgz", // systemd-cgroup host
			want: []wantContainer{
				{"e41d0176fce811b3065a604031ff6629c850d76747a29604ff930794596052bb",
					[]string{"25ad5c4c-4dd2-49a4-ab75-5e61e4568b0b"}, engine.StateRunning, 3219766},
			},
			labels: map[string]map[string]string{
				"e41d0176fce811b3065a604031ff6629c850d76747a29604ff930794596052bb": {"builder": "ci"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			log, logs := logBuffer()
			e, err := open(engine.Env{Log: log, Getenv: func(string) string { return "" }}, "", fixtureRoot(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			cs, err := e.List(context.Background())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(cs) != len(tt.want) {
				t.Fatalf("List returned %d containers, want %d: %+v", len(cs), len(tt.want), cs)
			}
			got := byID(cs)
			for _, w := range tt.want {
				c, ok := got[w.id]
				if !ok {
					t.Errorf("container %s missing", w.id)
					continue
				}
				if c.Engine != Name || !slices.Equal(c.Names, w.names) || c.State != w.state || c.PID != w.pid {
					t.Errorf("container %s = {engine %q names %q state %s pid %d}, want {names %q state %s pid %d}",
						w.id[:12], c.Engine, c.Names, c.State, c.PID, w.names, w.state, w.pid)
				}
				for k, v := range tt.labels[w.id] {
					if c.Labels[k] != v {
						t.Errorf("container %s label %s = %q, want %q", w.id[:12], k, c.Labels[k], v)
					}
				}
			}
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("unexpected warnings:\n%s", logs)
			}
		})
	}
}

// writeConfig writes containers/<id>/<file> under root.
func writeConfig(t *testing.T, root, id, file, content string) {
	t.Helper()
	dir := filepath.Join(root, "containers", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func configJSON(id, name string, running, paused, restarting bool, pid int) string {
	b := func(v bool) string {
		if v {
			return "true"
		}
		return "false"
	}
	return `{"ID":"` + id + `","Name":"/` + name + `","State":{"Running":` + b(running) +
		`,"Paused":` + b(paused) + `,"Restarting":` + b(restarting) + `,"Pid":` + strconv.Itoa(pid) + `}}`
}

const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	idC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	idD = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	idE = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
)

func TestCorruptConfigSkipsOnlyThatContainer(t *testing.T) {
	root := t.TempDir()
	good := configJSON(idA, "good", true, false, false, 42)
	writeConfig(t, root, idA, configV2, good)
	writeConfig(t, root, idB, configV2, good[:len(good)/2])             // truncated
	writeConfig(t, root, idC, configLegacy, "\x00\x01 not json at all") // garbage
	writeConfig(t, root, idD, configV2, "")                             // empty
	if err := os.MkdirAll(filepath.Join(root, "containers", "no-config-yet"), 0o700); err != nil {
		t.Fatal(err)
	}

	log, logs := logBuffer()
	r := &diskReader{dir: root, log: log}
	cs, err := r.list(context.Background())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(cs) != 1 || cs[0].ID != idA || cs[0].PID != 42 || cs[0].State != engine.StateRunning {
		t.Fatalf("list = %+v, want only the good container", cs)
	}
	for _, id := range []string{idB, idC, idD} {
		if !strings.Contains(logs.String(), id) {
			t.Errorf("no warning names skipped container %s:\n%s", id[:12], logs)
		}
	}
}

func TestLegacyAndV2Config(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, idA, configLegacy, configJSON(idA, "legacy", true, false, false, 7))
	// config.v2.json wins over a leftover config.json in the same directory.
	writeConfig(t, root, idB, configLegacy, configJSON(idB, "old-name", false, false, false, 0))
	writeConfig(t, root, idB, configV2, configJSON(idB, "new-name", true, false, false, 8))

	log, _ := logBuffer()
	cs, err := (&diskReader{dir: root, log: log}).list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byID(cs)
	if c := got[idA]; !slices.Equal(c.Names, []string{"legacy"}) || c.PID != 7 {
		t.Errorf("legacy container = %+v", c)
	}
	if c := got[idB]; !slices.Equal(c.Names, []string{"new-name"}) || c.PID != 8 {
		t.Errorf("v2 container = %+v, want the config.v2.json values", c)
	}
}

func TestStatesOnDisk(t *testing.T) {
	tests := []struct {
		name                        string
		running, paused, restarting bool
		pid                         int
		wantState                   engine.State
		wantPID                     int
	}{
		{"running", true, false, false, 10, engine.StateRunning, 10},
		{"paused (Docker keeps Running)", true, true, false, 11, engine.StatePaused, 11},
		{"paused without Running (PCP QA 1.3.2)", false, true, false, 0, engine.StatePaused, 0},
		{"restarting", true, false, true, 12, engine.StateRestarting, 0},
		{"exited", false, false, false, 0, engine.StateStopped, 0},
		{"stale pid on a stopped container", false, false, false, 13, engine.StateStopped, 0},
		{"negative pid", true, false, false, -5, engine.StateRunning, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeConfig(t, root, idA, configV2, configJSON(idA, "x", tt.running, tt.paused, tt.restarting, tt.pid))
			log, _ := logBuffer()
			cs, err := (&diskReader{dir: root, log: log}).list(context.Background())
			if err != nil || len(cs) != 1 {
				t.Fatalf("list = %+v, %v", cs, err)
			}
			if cs[0].State != tt.wantState || cs[0].PID != tt.wantPID {
				t.Errorf("state %s pid %d, want %s pid %d", cs[0].State, cs[0].PID, tt.wantState, tt.wantPID)
			}
		})
	}
}

func TestSymlinksOutsideAreNotFollowed(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	secret := configJSON(idC, "outside", true, false, false, 99)
	if err := os.WriteFile(filepath.Join(outside, configV2), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, root, idA, configV2, configJSON(idA, "inside", true, false, false, 1))
	// A container directory that is a symlink to a directory outside.
	if err := os.Symlink(outside, filepath.Join(root, "containers", idB)); err != nil {
		t.Fatal(err)
	}
	// A config file that is a symlink to a file outside.
	if err := os.MkdirAll(filepath.Join(root, "containers", idC), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, configV2), filepath.Join(root, "containers", idC, configV2)); err != nil {
		t.Fatal(err)
	}
	// A container directory that is a symlink staying inside the
	// configured directory is followed...
	if err := os.MkdirAll(filepath.Join(root, "spare", "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "spare", "d", configV2), []byte(configJSON(idD, "relative-link", true, false, false, 4)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../spare/d", filepath.Join(root, "containers", idD)); err != nil {
		t.Fatal(err)
	}
	// ...but a config file is never a symlink, even one inside.
	if err := os.MkdirAll(filepath.Join(root, "containers", idE), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../spare/d/"+configV2, filepath.Join(root, "containers", idE, configV2)); err != nil {
		t.Fatal(err)
	}

	log, logs := logBuffer()
	cs, err := (&diskReader{dir: root, log: log}).list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byID(cs)
	for _, c := range cs {
		if slices.Contains(c.Names, "outside") {
			t.Errorf("read a config outside the state directory: %+v", c)
		}
	}
	if _, ok := got[idA]; !ok {
		t.Errorf("container inside the directory missing: %+v", cs)
	}
	if c, ok := got[idD]; !ok || !slices.Equal(c.Names, []string{"relative-link"}) {
		t.Errorf("symlink inside the directory not followed: %+v", cs)
	}
	if _, ok := got[idE]; ok {
		t.Errorf("a config file that is a symlink was followed: %+v", got[idE])
	}
	if !strings.Contains(logs.String(), idB) || !strings.Contains(logs.String(), idC) || !strings.Contains(logs.String(), idE) {
		t.Errorf("escaping symlinks not reported:\n%s", logs)
	}
}

func TestFIFOConfigDoesNotHang(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "containers", idA)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, configV2), 0o600); err != nil {
		t.Fatal(err)
	}
	log, logs := logBuffer()
	cs, err := (&diskReader{dir: root, log: log}).list(context.Background())
	if err != nil || len(cs) != 0 {
		t.Fatalf("list = %+v, %v; want no containers, no error", cs, err)
	}
	if !strings.Contains(logs.String(), "not a regular file") {
		t.Errorf("FIFO not reported:\n%s", logs)
	}
}

func TestMissingDirIsUnavailable(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "nope"), t.TempDir() /* no containers/ */} {
		log, _ := logBuffer()
		_, err := (&diskReader{dir: dir, log: log}).list(context.Background())
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("list(%s) error = %v, want ErrUnavailable", dir, err)
		}
	}
}

// With verification (the API fallback), a running container counts only if
// its PID's cgroup names it.
func TestFallbackVerifiesPIDs(t *testing.T) {
	root := t.TempDir()
	proc := t.TempDir()
	writeConfig(t, root, idA, configV2, configJSON(idA, "alive", true, false, false, 100))
	writeConfig(t, root, idB, configV2, configJSON(idB, "pid-reused", true, false, false, 200))
	writeConfig(t, root, idC, configV2, configJSON(idC, "gone", true, false, false, 300))
	writeConfig(t, root, idD, configV2, configJSON(idD, "restarting", true, false, true, 0))
	for pid, cgroup := range map[string]string{
		"100": "12:memory:/docker/" + idA + "\n0::/docker/" + idA + "\n",
		"200": "0::/user.slice/session-1.scope\n",
	} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(cgroup), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log, _ := logBuffer()
	r := &diskReader{dir: root, log: log, verifyPIDs: true, procRoot: proc}
	cs, err := r.list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byID(cs)
	want := map[string]struct {
		state engine.State
		pid   int
	}{
		idA: {engine.StateRunning, 100},
		idB: {engine.StateStopped, 0},
		idC: {engine.StateStopped, 0},
		idD: {engine.StateStopped, 0},
	}
	for id, w := range want {
		if c := got[id]; c.State != w.state || c.PID != w.pid {
			t.Errorf("%s: state %s pid %d, want %s pid %d", c.Names, c.State, c.PID, w.state, w.pid)
		}
	}
}

// Exclusive on-disk mode takes the files as the truth: PCP QA fixtures name
// PIDs that do not exist on the test host.
func TestExclusiveModeTrustsFiles(t *testing.T) {
	log, _ := logBuffer()
	e, err := open(engine.Env{Log: log, Getenv: func(k string) string {
		if k == "PCP_DOCKER_DIR" {
			return fixtureRoot(t, "containers-docker-titan-root-007.tgz")
		}
		return ""
	}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := e.List(context.Background())
	if err != nil || len(cs) != 1 {
		t.Fatalf("List = %+v, %v", cs, err)
	}
	if _, err := os.Stat("/proc/3219766"); err == nil {
		t.Skip("PID 3219766 exists on this host")
	}
	if cs[0].State != engine.StateRunning || cs[0].PID != 3219766 {
		t.Errorf("got %s pid %d, want running 3219766 as the file says", cs[0].State, cs[0].PID)
	}
}

func waitEvent(t *testing.T, events <-chan engine.Event, kind engine.EventKind) engine.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event within 10s", kind)
		}
	}
}

func TestDiskWatch(t *testing.T) {
	root := t.TempDir()
	writeConfig(t, root, idA, configV2, configJSON(idA, "a", true, false, false, 1))
	log, _ := logBuffer()
	e := &diskEngine{disk: &diskReader{dir: root, log: log}, log: log}

	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan engine.Event, 16)
	done := make(chan struct{})
	go func() { defer close(done); e.Watch(ctx, events) }()
	t.Cleanup(func() { cancel(); <-done })

	// A new container (directory, then config) must produce a Resync. The
	// watch is set up asynchronously, so keep adding containers until one
	// is seen.
	n := 0
	untilEvent(t, events, engine.Resync, func() {
		n++
		id := strings.Repeat(strconv.Itoa(n%10), 64)
		writeConfig(t, root, id, configV2, configJSON(id, "new"+strconv.Itoa(n), true, false, false, n))
	})

	// A container's config being replaced (Docker renames a new file over it).
	tmp := filepath.Join(root, "containers", idA, ".tmp-config")
	if err := os.WriteFile(tmp, []byte(configJSON(idA, "a", false, false, false, 0)), 0o600); err != nil {
		t.Fatal(err)
	}
	drain(events)
	if err := os.Rename(tmp, filepath.Join(root, "containers", idA, configV2)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, engine.Resync)

	// The whole directory going away, then coming back.
	if err := os.RemoveAll(filepath.Join(root, "containers")); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, engine.Unavailable)
	writeConfig(t, root, idA, configV2, configJSON(idA, "a", true, false, false, 1))
	waitEvent(t, events, engine.Resync)
}

// untilEvent repeats action until an event of kind arrives.
func untilEvent(t *testing.T, events <-chan engine.Event, kind engine.EventKind, action func()) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	action()
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind {
				return
			}
		case <-tick.C:
			action()
		case <-deadline:
			t.Fatalf("no %s event within 10s", kind)
		}
	}
}

func drain(events <-chan engine.Event) {
	for {
		select {
		case <-events:
		default:
			return
		}
	}
}

func TestRelevantFileChanges(t *testing.T) {
	top := "/d/containers"
	tests := []struct {
		name string
		want bool
	}{
		{top + "/" + idA, true},
		{top + "/" + idA + "/" + configV2, true},
		{top + "/" + idA + "/" + configLegacy, true},
		{top + "/" + idA + "/" + idA + "-json.log", false},
		{top + "/" + idA + "/hostconfig.json", false},
		{top + "/" + idA + "/mounts/shm", false},
		{"/elsewhere/" + configV2, false},
	}
	log, _ := logBuffer()
	e := &diskEngine{log: log}
	for _, tt := range tests {
		// Write events only: Create would also try to watch the path.
		if got := e.relevant(nil, top, fsnotifyWrite(tt.name)); got != tt.want {
			t.Errorf("relevant(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func fsnotifyWrite(name string) fsnotify.Event {
	return fsnotify.Event{Name: name, Op: fsnotify.Write}
}

// TestConformanceOnDisk runs the engine contract's suite over every PCP QA
// state tree, reading Docker's state directory.
func TestConformanceOnDisk(t *testing.T) {
	for _, fixture := range []string{
		"containers-docker-1.2.0-root-002.tgz",
		"containers-docker-1.3.2-root-001.tgz",
		"containers-docker-1.5.0-root-003.tgz",
		"containers-docker-1.10.3-root-004.tgz",
		"containers-docker-1.10.3-root-005.tgz",
		"containers-docker-1.12.6-root-006.tgz",
		"containers-docker-titan-root-007.tgz",
	} {
		t.Run(fixture, func(t *testing.T) {
			log, _ := logBuffer()
			env := engine.Env{Log: log, Getenv: func(string) string { return "" }}
			root := fixtureRoot(t, fixture)
			enginetest.Run(t, enginetest.Harness{
				Open: func(context.Context) (engine.Engine, error) { return open(env, "", root) },
				OpenAbsent: func(context.Context) (engine.Engine, error) {
					return open(env, "", filepath.Join(t.TempDir(), "no-docker"))
				},
				Timeout: 10 * time.Second,
			})
		})
	}
}
