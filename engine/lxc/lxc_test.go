package lxc

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/internal/fixtures"
)

func testEngine(t *testing.T, lxcpath, procRoot string) *Engine {
	return &Engine{
		log:      slog.New(slog.NewTextHandler(t.Output(), nil)),
		lxcpath:  lxcpath,
		commands: commandClient{timeout: 300 * time.Millisecond},
		cgroups:  cgroups{procRoot: procRoot},
		// A hung monitor is not asked again behind a test's back.
		monitorRetry: time.Hour,
	}
}

func mkContainer(t *testing.T, lxcpath, name, config string) string {
	t.Helper()
	dir := filepath.Join(lxcpath, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// byName indexes a listing; it fails the test on duplicate IDs.
func byName(t *testing.T, cs []engine.Container) map[string]engine.Container {
	t.Helper()
	m := map[string]engine.Container{}
	for _, c := range cs {
		if _, dup := m[c.ID]; dup {
			t.Errorf("container %q listed twice", c.ID)
		}
		if c.Engine != Name || len(c.Names) != 1 || c.Names[0] != c.ID {
			t.Errorf("container %q: engine %q names %q; want engine lxc and names [ID]", c.ID, c.Engine, c.Names)
		}
		m[c.ID] = c
	}
	return m
}

func TestListFromCommandSockets(t *testing.T) {
	root := t.TempDir()
	lxcpath := filepath.Join(root, "lxc")
	outside := filepath.Join(root, "outside")
	cg := newFakeCgroups(t)

	mkContainer(t, lxcpath, "web", "lxc.uts.name = web-host\n")
	cg.process("101", "web", "THAWED", "0")
	mkContainer(t, lxcpath, "frozen", "")
	cg.process("102", "frozen", "FROZEN", "0")
	mkContainer(t, lxcpath, "v2frozen", "")
	cg.process("103", "v2frozen", "", "1")
	mkContainer(t, lxcpath, "monfrozen", "") // the monitor itself says FROZEN
	mkContainer(t, lxcpath, "starting", "")
	mkContainer(t, lxcpath, "silent", "")
	mkContainer(t, lxcpath, "old", "lxc.utsname = old-host\n")
	// Not containers, or not ours to read:
	must(t, os.MkdirAll(filepath.Join(lxcpath, "stray", "rootfs"), 0o755))
	must(t, os.WriteFile(filepath.Join(lxcpath, "afile"), []byte("lxc.uts.name = x\n"), 0o644))
	mkContainer(t, outside, "victim", "lxc.uts.name = outside\n")
	must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(lxcpath, "escape")))
	must(t, os.Symlink("../outside/victim", filepath.Join(lxcpath, "escape-relative")))
	must(t, os.MkdirAll(filepath.Join(lxcpath, "cfgescape"), 0o755))
	must(t, os.Symlink(filepath.Join(outside, "victim", "config"), filepath.Join(lxcpath, "cfgescape", "config")))
	must(t, os.MkdirAll(filepath.Join(lxcpath, "cfgfifo"), 0o755))
	must(t, syscall.Mkfifo(filepath.Join(lxcpath, "cfgfifo", "config"), 0o644))
	must(t, os.MkdirAll(filepath.Join(lxcpath, "cfgdir", "config"), 0o755))
	// A symlink that stays inside is followed, as LXC follows it.
	must(t, os.Symlink("web", filepath.Join(lxcpath, "alias")))

	monitors := []*fakeMonitor{
		startFakeMonitor(t, lxcpath, "web", monitorAnswer{state: lxcRunning, pid: 101}),
		startFakeMonitor(t, lxcpath, "frozen", monitorAnswer{state: lxcRunning, pid: 102}),
		startFakeMonitor(t, lxcpath, "v2frozen", monitorAnswer{state: lxcRunning, pid: 103}),
		startFakeMonitor(t, lxcpath, "monfrozen", monitorAnswer{state: lxcFrozen, pid: 104}),
		startFakeMonitor(t, lxcpath, "starting", monitorAnswer{state: lxcStarting, pid: 105}),
		startFakeMonitor(t, lxcpath, "silent", monitorAnswer{silent: true}),
	}

	e := testEngine(t, lxcpath, cg.proc)
	cs, err := e.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, cs)
	want := map[string]struct {
		state engine.State
		pid   int
		uts   string
	}{
		"web":       {engine.StateRunning, 101, "web-host"},
		"alias":     {engine.StateStopped, 0, "web-host"},
		"frozen":    {engine.StatePaused, 102, ""},
		"v2frozen":  {engine.StatePaused, 103, ""},
		"monfrozen": {engine.StatePaused, 104, ""},
		"starting":  {engine.StateStopped, 0, ""},
		"silent":    {engine.StateStopped, 0, ""},
		"old":       {engine.StateStopped, 0, "old-host"},
	}
	for name, w := range want {
		c, ok := got[name]
		if !ok {
			t.Errorf("%s: not listed", name)
			continue
		}
		if c.State != w.state || c.PID != w.pid || c.Labels[LabelUTSName] != w.uts {
			t.Errorf("%s: state %s pid %d uts %q; want %s %d %q", name, c.State, c.PID, c.Labels[LabelUTSName], w.state, w.pid, w.uts)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: listed, but it is not a container of this lxc path", name)
		}
	}
	if !e.unsettled.Load() {
		t.Error("a starting and a silent container did not mark the listing unsettled")
	}
	for _, m := range monitors {
		for _, cmd := range m.received() {
			if cmd != cmdGetState && cmd != cmdGetInitPID {
				t.Errorf("engine sent command %d; it may only ask for state and init pid", cmd)
			}
		}
	}
}

func TestListSettled(t *testing.T) {
	lxcpath := t.TempDir()
	mkContainer(t, lxcpath, "web", "")
	startFakeMonitor(t, lxcpath, "web", monitorAnswer{state: lxcRunning, pid: os.Getpid()})
	mkContainer(t, lxcpath, "down", "")
	e := testEngine(t, lxcpath, "/proc")
	e.unsettled.Store(true)
	cs, err := e.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, cs)
	if c := got["web"]; c.State != engine.StateRunning || c.PID != os.Getpid() {
		t.Errorf("web = %+v, want running with pid %d", c, os.Getpid())
	}
	if c := got["down"]; c.State != engine.StateStopped || c.PID != 0 {
		t.Errorf("down = %+v, want stopped", c)
	}
	if e.unsettled.Load() {
		t.Error("listing unsettled although every container was running or stopped")
	}
}

func TestListUnavailable(t *testing.T) {
	root := t.TempDir()
	afile := filepath.Join(root, "file")
	must(t, os.WriteFile(afile, nil, 0o644))
	for _, lxcpath := range []string{filepath.Join(root, "missing"), afile} {
		e := testEngine(t, lxcpath, "/proc")
		if _, err := e.List(context.Background()); !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("List of %s: err = %v, want ErrUnavailable", lxcpath, err)
		}
	}
}

func TestListEmpty(t *testing.T) {
	e := testEngine(t, t.TempDir(), "/proc")
	cs, err := e.List(context.Background())
	if err != nil || len(cs) != 0 {
		t.Errorf("List = %v, %v; want nothing", cs, err)
	}
}

// unpackFixture extracts a PCP QA tarball into dir, refusing entries that
// would land outside it.
func unpackFixture(t *testing.T, tgz, dir string) {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatalf("PCP QA fixture: %v", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	must(t, err)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		must(t, err)
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("fixture entry %q escapes", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			must(t, os.MkdirAll(target, 0o755))
		case tar.TypeReg:
			must(t, os.MkdirAll(filepath.Dir(target), 0o755))
			data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			must(t, err)
			must(t, os.WriteFile(target, data, 0o644))
		}
	}
}

func TestPCPQAFixtureLXC106(t *testing.T) {
	root := t.TempDir()
	tgz, err := fixtures.PCPQA("containers-lxc-1.0.6-root-001.tgz")
	if err != nil {
		t.Fatal(err)
	}
	unpackFixture(t, tgz, root)
	e, err := open(engine.Env{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Getenv: func(k string) string {
		if k == "PCP_LXC_DIR" {
			return filepath.Join(root, "var/lib/lxc")
		}
		return ""
	}}, "", "", filepath.Join(root, "no-lxc.conf"))
	must(t, err)
	cs, err := e.List(context.Background())
	must(t, err)
	if len(cs) != 1 {
		t.Fatalf("List = %+v, want the one container myvm", cs)
	}
	c := cs[0]
	if c.ID != "myvm" || !slices.Equal(c.Names, []string{"myvm"}) || c.State != engine.StateStopped ||
		c.PID != 0 || c.Labels[LabelUTSName] != "myvm" {
		t.Errorf("myvm = %+v", c)
	}
}

const fakeLXCInfo = `#!/bin/sh
[ "$1" = -n ] || { echo "usage: $0 -n NAME" >&2; exit 2; }
case $2 in
web)      printf 'Name:           web\nState:          RUNNING\nPID:            4242\nCPU use:        0.01 seconds\n' ;;
frozen)   printf 'State: FROZEN\nPID: 77\n' ;;
old)      printf 'Name:           old\nState:          STOPPED\n' ;;
stopping) printf 'State: STOPPING\nPID: 88\n' ;;
nopid)    printf 'State: RUNNING\n' ;;
garbage)  echo 'lxc-info: not what you expect' ;;
*)        echo "$2 doesn't exist" >&2; exit 1 ;;
esac
`

func TestListWithLXCInfoCommand(t *testing.T) {
	root := t.TempDir()
	script := filepath.Join(root, "fake-lxc-info")
	must(t, os.WriteFile(script, []byte(fakeLXCInfo), 0o755))
	lxcpath := filepath.Join(root, "lxc")
	names := []string{"web", "frozen", "old", "stopping", "nopid", "garbage", "gone"}
	for _, n := range names {
		mkContainer(t, lxcpath, n, "")
	}
	// A running monitor proves the command, not the socket, is asked.
	startFakeMonitor(t, lxcpath, "old", monitorAnswer{state: lxcRunning, pid: 1})

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	openFn := configure(fs)
	must(t, fs.Parse([]string{"--lxc-path", lxcpath}))
	eng, err := openFn(engine.Env{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Getenv: func(k string) string {
		if k == "PCP_LXC_INFO" {
			return script
		}
		return ""
	}})
	must(t, err)
	cs, err := eng.List(context.Background())
	must(t, err)
	got := byName(t, cs)
	want := map[string]struct {
		state engine.State
		pid   int
	}{
		"web":      {engine.StateRunning, 4242},
		"frozen":   {engine.StatePaused, 77},
		"old":      {engine.StateStopped, 0},
		"stopping": {engine.StateStopped, 0},
		"nopid":    {engine.StateStopped, 0},
		"garbage":  {engine.StateStopped, 0},
		"gone":     {engine.StateStopped, 0},
	}
	if len(got) != len(want) {
		t.Errorf("listed %d containers, want %d", len(got), len(want))
	}
	for name, w := range want {
		if c := got[name]; c.State != w.state || c.PID != w.pid {
			t.Errorf("%s: state %s pid %d; want %s %d", name, c.State, c.PID, w.state, w.pid)
		}
	}
}

func TestOpenRejectsMissingLXCInfoCommand(t *testing.T) {
	env := engine.Env{Getenv: func(string) string { return "" }}
	missing := filepath.Join(t.TempDir(), "no-such-lxc-info")
	if _, err := open(env, t.TempDir(), missing, "/nonexistent/lxc.conf"); err == nil {
		t.Error("open accepted an lxc-info command that does not exist")
	}
	if _, err := open(env, "relative/path", "", "/nonexistent/lxc.conf"); err == nil {
		t.Error("open accepted a relative lxc path")
	}
}

func TestParseLXCInfo(t *testing.T) {
	tests := []struct {
		name, out string
		state     lxcState
		pid       int
		wantErr   bool
	}{
		{name: "running", out: "Name:           web\nState:          RUNNING\nPID:            1234\nIP:  10.0.3.5\n", state: lxcRunning, pid: 1234},
		{name: "stopped has no pid", out: "Name: x\nState: STOPPED\n", state: lxcStopped},
		{name: "frozen", out: "State: FROZEN\nPID: 9\n", state: lxcFrozen, pid: 9},
		{name: "lower case", out: "state: running\npid: 5\n", state: lxcRunning, pid: 5},
		{name: "no state", out: "PID: 5\n", wantErr: true},
		{name: "unknown state", out: "State: DANCING\n", wantErr: true},
		{name: "bad pid", out: "State: RUNNING\nPID: twelve\n", wantErr: true},
		{name: "negative pid", out: "State: RUNNING\nPID: -3\n", wantErr: true},
		{name: "empty", out: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, pid, err := parseLXCInfo([]byte(tt.out))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v %d, want an error", st, pid)
				}
				return
			}
			if err != nil || st != tt.state || pid != tt.pid {
				t.Errorf("got %v %d %v, want %v %d", st, pid, err, tt.state, tt.pid)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	d, ok := engine.Lookup(Name)
	if !ok {
		t.Fatal("lxc engine not registered")
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	d.Configure(fs)
	for _, f := range []string{"lxc-path", "lxc-info"} {
		if fs.Lookup(f) == nil {
			t.Errorf("flag --%s not declared", f)
		}
	}
}

func TestCappedBuffer(t *testing.T) {
	var b cappedBuffer
	chunk := strings.Repeat("x", 1000)
	for i := 0; i < 2*maxInfoOutput/len(chunk); i++ {
		if n, err := b.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.Len() != maxInfoOutput {
		t.Errorf("kept %d bytes, want %d", b.Len(), maxInfoOutput)
	}
}

// TestConformancePCPQAFixture runs the engine contract's suite over PCP's
// LXC QA state tree (a stopped container, so no live PIDs).
func TestConformancePCPQAFixture(t *testing.T) {
	root := t.TempDir()
	tgz, err := fixtures.PCPQA("containers-lxc-1.0.6-root-001.tgz")
	if err != nil {
		t.Fatal(err)
	}
	unpackFixture(t, tgz, root)
	openAt := func(lxcpath string) func(context.Context) (engine.Engine, error) {
		return func(context.Context) (engine.Engine, error) {
			return open(engine.Env{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Getenv: func(k string) string {
				if k == "PCP_LXC_DIR" {
					return lxcpath
				}
				return ""
			}}, "", "", filepath.Join(root, "no-lxc.conf"))
		}
	}
	enginetest.Run(t, enginetest.Harness{
		Open:       openAt(filepath.Join(root, "var/lib/lxc")),
		OpenAbsent: openAt(filepath.Join(root, "no-such-lxcpath")),
		Expect:     []engine.Container{{ID: "myvm", Names: []string{"myvm"}, State: engine.StateStopped}},
		Timeout:    10 * time.Second,
	})
}

// TestHungMonitorKeepsLastKnownState: a monitor that is listening but does
// not answer (SIGSTOPped, or wedged) leaves its container as it was last
// seen, and unsettled so that Watch asks again; a container never seen
// running, or whose monitor is gone, is stopped.
func TestHungMonitorKeepsLastKnownState(t *testing.T) {
	pid := os.Getpid()
	cases := []struct {
		name      string
		before    *monitorAnswer // the first List's monitor; nil: none
		after     *monitorAnswer // the second List's monitor; nil: none
		wantState engine.State
		wantPID   int
		unsettled bool
	}{
		{name: "running, then hung", before: &monitorAnswer{state: lxcRunning, pid: pid}, after: &monitorAnswer{silent: true},
			wantState: engine.StateRunning, wantPID: pid, unsettled: true},
		{name: "never seen running, hung", after: &monitorAnswer{silent: true},
			wantState: engine.StateStopped, unsettled: true},
		{name: "stopped, then hung", before: &monitorAnswer{state: lxcStopped}, after: &monitorAnswer{silent: true},
			wantState: engine.StateStopped, unsettled: true},
		{name: "running, then monitor gone", before: &monitorAnswer{state: lxcRunning, pid: pid},
			wantState: engine.StateStopped},
		{name: "running, then a new monitor answers", before: &monitorAnswer{state: lxcRunning, pid: pid}, after: &monitorAnswer{state: lxcRunning, pid: pid},
			wantState: engine.StateRunning, wantPID: pid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lxcpath := t.TempDir()
			mkContainer(t, lxcpath, "web", "")
			e := testEngine(t, lxcpath, "/proc")
			ctx := context.Background()
			if tc.before != nil {
				m := startFakeMonitor(t, lxcpath, "web", *tc.before)
				if _, err := e.List(ctx); err != nil {
					t.Fatal(err)
				}
				m.stop()
			}
			var m *fakeMonitor
			if tc.after != nil {
				m = startFakeMonitor(t, lxcpath, "web", *tc.after)
			}
			cs, err := e.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c := byName(t, cs)["web"]
			if c.State != tc.wantState || c.PID != tc.wantPID {
				t.Errorf("web = %s pid %d, want %s pid %d", c.State, c.PID, tc.wantState, tc.wantPID)
			}
			if got := e.unsettled.Load(); got != tc.unsettled {
				t.Errorf("unsettled = %v, want %v", got, tc.unsettled)
			}
			if m == nil || !tc.after.silent {
				return
			}
			// The next List does not ask the hung monitor again, and
			// reports the same.
			asked := len(m.received())
			cs, err = e.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c2 := byName(t, cs)["web"]; c2.State != c.State || c2.PID != c.PID {
				t.Errorf("second List: web = %s pid %d, want %s pid %d", c2.State, c2.PID, c.State, c.PID)
			}
			if n := len(m.received()); n != asked {
				t.Errorf("second List asked the hung monitor again (%d commands, had %d)", n, asked)
			}
		})
	}
}
