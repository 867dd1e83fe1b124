package podman

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

func TestDiscover(t *testing.T) {
	uid := os.Getuid()
	type want struct{ data, run, user string }
	tests := []struct {
		name  string
		setup func(h *fakeHost)
		want  []want
	}{
		{
			name: "nothing installed",
		},
		{
			name: "rootful overlay",
			setup: func(h *fakeHost) {
				h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay")
			},
			want: []want{{"var/lib/containers/storage/overlay-containers", "run/containers/storage/overlay-containers", ""}},
		},
		{
			name: "rootful overlay, vfs, and btrfs before its containers.json",
			setup: func(h *fakeHost) {
				h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay")
				h.writeStorage("var/lib/containers/storage", "run/containers/storage", "vfs")
				h.mkdir("var/lib/containers/storage/btrfs-containers")
				h.mkdir("var/lib/containers/storage/overlay-images")
			},
			want: []want{
				{"var/lib/containers/storage/btrfs-containers", "run/containers/storage/btrfs-containers", ""},
				{"var/lib/containers/storage/overlay-containers", "run/containers/storage/overlay-containers", ""},
				{"var/lib/containers/storage/vfs-containers", "run/containers/storage/vfs-containers", ""},
			},
		},
		{
			name: "storage.conf moves the rootful storage",
			setup: func(h *fakeHost) {
				h.write("etc/containers/storage.conf", "[storage]\ndriver = \"overlay\"\n"+
					"graphroot = \""+h.path("srv/graph")+"\" # moved\nrunroot = '"+h.path("srv/run")+"'\n"+
					"[storage.options]\ngraphroot = \"/not/this\"\n")
				h.writeStorage("srv/graph", "srv/run", "overlay")
				h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay")
			},
			want: []want{{"srv/graph/overlay-containers", "srv/run/overlay-containers", ""}},
		},
		{
			name: "rootless user from passwd with /run/user runtime dir",
			setup: func(h *fakeHost) {
				h.write("etc/passwd", "alice:x:"+strconv.Itoa(uid)+":100::"+h.path("home/alice")+":/bin/sh\n")
				h.writeStorage("home/alice/.local/share/containers/storage", "run/user/"+strconv.Itoa(uid)+"/containers", "overlay")
			},
			want: []want{{"home/alice/.local/share/containers/storage/overlay-containers", "run/user/" + strconv.Itoa(uid) + "/containers/overlay-containers", "alice"}},
		},
		{
			name: "rootless home outside /home, vfs driver, /tmp runtime dir",
			setup: func(h *fakeHost) {
				h.write("etc/passwd", "bob:x:"+strconv.Itoa(uid)+":100::"+h.path("srv/bob")+":/bin/sh\n")
				h.writeStorage("srv/bob/.local/share/containers/storage", "tmp/podman-run-"+strconv.Itoa(uid)+"/containers", "vfs")
			},
			want: []want{{"srv/bob/.local/share/containers/storage/vfs-containers", "tmp/podman-run-" + strconv.Itoa(uid) + "/containers/vfs-containers", "bob"}},
		},
		{
			name: "home directory not in passwd",
			setup: func(h *fakeHost) {
				h.writeStorage("home/carol/.local/share/containers/storage", "run/user/"+strconv.Itoa(uid)+"/containers", "overlay")
			},
			want: []want{{"home/carol/.local/share/containers/storage/overlay-containers", "run/user/" + strconv.Itoa(uid) + "/containers/overlay-containers", strconv.Itoa(uid)}},
		},
		{
			name: "rootless_storage_path from storage.conf",
			setup: func(h *fakeHost) {
				h.write("etc/passwd", "dave:x:"+strconv.Itoa(uid)+":100::"+h.path("home/dave")+":/bin/sh\n")
				h.write("etc/containers/storage.conf", "[storage]\nrootless_storage_path = \""+h.path("srv/$USER-$UID")+"\"\n")
				h.writeStorage("srv/dave-"+strconv.Itoa(uid), "run/user/"+strconv.Itoa(uid)+"/containers", "overlay")
			},
			want: []want{{"srv/dave-" + strconv.Itoa(uid) + "/overlay-containers", "run/user/" + strconv.Itoa(uid) + "/containers/overlay-containers", "dave"}},
		},
		{
			name: "rootless storage owned by another uid is ignored",
			setup: func(h *fakeHost) {
				h.write("etc/passwd", "eve:x:"+strconv.Itoa(uid+1)+":100::"+h.path("srv/eve")+":/bin/sh\n")
				h.writeStorage("srv/eve/.local/share/containers/storage", "run/user/"+strconv.Itoa(uid+1)+"/containers", "overlay")
			},
		},
		{
			name: "rootless storage without a run dir",
			setup: func(h *fakeHost) {
				h.write("etc/passwd", "frank:x:"+strconv.Itoa(uid)+":100::"+h.path("srv/frank")+":/bin/sh\n")
				h.writeStorage("srv/frank/.local/share/containers/storage", "srv/elsewhere", "overlay")
			},
			want: []want{{"srv/frank/.local/share/containers/storage/overlay-containers", "", "frank"}},
		},
		{
			name: "rootful and rootless together",
			setup: func(h *fakeHost) {
				h.write("etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:"+strconv.Itoa(uid)+":100::"+h.path("home/alice")+":/bin/sh\n")
				h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay")
				h.writeStorage("home/alice/.local/share/containers/storage", "run/user/"+strconv.Itoa(uid)+"/containers", "overlay")
			},
			want: []want{
				{"var/lib/containers/storage/overlay-containers", "run/containers/storage/overlay-containers", ""},
				{"home/alice/.local/share/containers/storage/overlay-containers", "run/user/" + strconv.Itoa(uid) + "/containers/overlay-containers", "alice"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			l := discover(h.paths, testLog(t))
			var got []want
			for _, s := range l.storages {
				w := want{data: rel(t, h, s.dataDir()), user: s.User}
				if s.runDir() != "" {
					w.run = rel(t, h, s.runDir())
				}
				got = append(got, w)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("storages\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// rel makes a discovered path relative to the fake root, resolving the
// temporary directory's own links as discovery does.
func rel(t *testing.T, h *fakeHost, p string) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(h.root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestListNamesAndIDs(t *testing.T) {
	h := newFakeHost(t)
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay",
		fakeContainer{id: testID(1), names: []string{"web"}},
		fakeContainer{id: testID(2), names: []string{"/db", "db-alias"}},
		fakeContainer{id: "../../../etc", names: []string{"evil"}},
		fakeContainer{id: testID(3)},
	)
	got, err := h.engine().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{testID(1): {"web"}, testID(2): {"db", "db-alias"}, testID(3): nil}
	if len(got) != len(want) {
		t.Fatalf("got %d containers, want %d: %+v", len(got), len(want), got)
	}
	for _, c := range got {
		names, ok := want[c.ID]
		if !ok {
			t.Errorf("unexpected container %q", c.ID)
			continue
		}
		if !slices.Equal(c.Names, names) {
			t.Errorf("%s: names %q, want %q", c.ShortID(), c.Names, names)
		}
		if c.Engine != Name || c.State != engine.StateStopped || c.PID != 0 {
			t.Errorf("%s: got engine %q state %q pid %d, want podman stopped 0", c.ShortID(), c.Engine, c.State, c.PID)
		}
		if c.Labels[LabelImage] != "localhost/bb:latest" {
			t.Errorf("%s: image label %q", c.ShortID(), c.Labels[LabelImage])
		}
	}
}

func TestListKeepsLastGoodContainersJSON(t *testing.T) {
	h := newFakeHost(t)
	e := h.engine()
	file := "var/lib/containers/storage/overlay-containers/containers.json"
	steps := []struct {
		name    string
		content string // "" keeps what writeStorage wrote
		want    []string
	}{
		{"good", "", []string{testID(1), testID(2)}},
		{"half written", `[{"id":"` + testID(1) + `","names":["a"]},{"id":"`, []string{testID(1), testID(2)}},
		{"not json", "\x00\x00garbage", []string{testID(1), testID(2)}},
		{"fixed with one container", `[{"id":"` + testID(3) + `","names":["c"]}]`, []string{testID(3)}},
		{"empty file after that", ``, []string{testID(3)}},
	}
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay",
		fakeContainer{id: testID(1), names: []string{"a"}}, fakeContainer{id: testID(2), names: []string{"b"}})
	for i, st := range steps {
		if i > 0 {
			h.write(file, st.content)
		}
		got, err := e.List(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, st.want) {
			t.Errorf("%s: got %q, want %q", st.name, ids, st.want)
		}
	}
}

func TestListCorruptWithoutLastGood(t *testing.T) {
	h := newFakeHost(t)
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay")
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "vfs", fakeContainer{id: testID(7), names: []string{"v"}})
	h.write("var/lib/containers/storage/overlay-containers/containers.json", "{")
	got, err := h.engine().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != testID(7) {
		t.Errorf("got %+v, want only the vfs container", got)
	}
}

func TestListRefusesSymlinks(t *testing.T) {
	h := newFakeHost(t)
	h.writeStorage("srv/other", "run/containers/storage", "overlay", fakeContainer{id: testID(9), names: []string{"secret"}})
	h.mkdir("var/lib/containers/storage/overlay-containers")
	if err := os.Symlink(h.path("srv/other/overlay-containers/containers.json"), h.path("var/lib/containers/storage/overlay-containers/containers.json")); err != nil {
		t.Fatal(err)
	}
	got, err := h.engine().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("followed a symlinked containers.json: %+v", got)
	}
}

func TestListUnavailable(t *testing.T) {
	h := newFakeHost(t)
	_, err := h.engine().List(context.Background())
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
	h.mkdir("var/lib/containers/storage")
	got, err := h.engine().List(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("storage without containers: got %v, %v; want none, nil", got, err)
	}
}

func TestStateFromRealProc(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	self, parent := os.Getpid(), os.Getppid()
	tests := []struct {
		name      string
		c         fakeContainer
		wantPID   int
		wantState engine.State
	}{
		{"no pidfile", fakeContainer{}, 0, engine.StateStopped},
		{"dead pid", fakeContainer{pid: dead.Process.Pid, conmon: parent}, 0, engine.StateStopped},
		{"live pid whose parent is conmon", fakeContainer{pid: self, conmon: parent}, self, engine.StateRunning},
		{"live pid of someone else (recycled)", fakeContainer{pid: self, conmon: dead.Process.Pid}, 0, engine.StateStopped},
		{"live pid without conmon.pid", fakeContainer{pid: self}, 0, engine.StateStopped},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.paths.proc = "/proc"
			tt.c.id = testID(100 + i)
			h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay", tt.c)
			got, err := h.engine().List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].PID != tt.wantPID || got[0].State != tt.wantState {
				t.Errorf("got %+v, want pid %d state %s", got, tt.wantPID, tt.wantState)
			}
		})
	}
}

func TestStateFromCgroups(t *testing.T) {
	id := testID(5)
	cg := "/libpod_parent/libpod-" + id
	const pid = 4242
	tests := []struct {
		name      string
		procState byte
		cgroups   []string
		files     map[string]string // below the cgroup root
		want      engine.State
	}{
		{"v1 thawed", 'S', []string{"6:freezer:" + cg, "0::" + cg},
			map[string]string{"freezer" + cg + "/freezer.state": "THAWED\n"}, engine.StateRunning},
		{"v1 frozen", 'S', []string{"6:freezer:" + cg, "0::" + cg},
			map[string]string{"freezer" + cg + "/freezer.state": "FROZEN\n", "unified" + cg + "/cgroup.events": "populated 1\nfrozen 0\n"}, engine.StatePaused},
		{"v1 freezing", 'D', []string{"6:freezer:" + cg}, map[string]string{"freezer" + cg + "/freezer.state": "FREEZING\n"}, engine.StatePaused},
		{"hybrid unified frozen", 'S', []string{"6:freezer:" + cg, "0::" + cg},
			map[string]string{"freezer" + cg + "/freezer.state": "THAWED\n", "unified" + cg + "/cgroup.events": "populated 1\nfrozen 1\n"}, engine.StatePaused},
		{"pure v2 frozen", 'S', []string{"0::" + cg},
			map[string]string{"cgroup.controllers": "cpu memory\n", cg[1:] + "/cgroup.events": "populated 1\nfrozen 1\n"}, engine.StatePaused},
		{"pure v2 freeze requested", 'S', []string{"0::" + cg},
			map[string]string{"cgroup.controllers": "cpu memory\n", cg[1:] + "/cgroup.freeze": "1\n"}, engine.StatePaused},
		{"pure v2 running", 'S', []string{"0::" + cg},
			map[string]string{"cgroup.controllers": "cpu memory\n", cg[1:] + "/cgroup.events": "populated 1\nfrozen 0\n"}, engine.StateRunning},
		{"cgroup path escaping the hierarchy stays inside", 'S', []string{"6:freezer:/../../../" + cg[1:]},
			map[string]string{"freezer" + cg + "/freezer.state": "FROZEN\n"}, engine.StatePaused},
		{"zombie", 'Z', []string{"6:freezer:" + cg}, map[string]string{"freezer" + cg + "/freezer.state": "FROZEN\n"}, engine.StateStopped},
		{"cgroup of another container", 'S', []string{"6:freezer:/libpod_parent/libpod-" + testID(6)}, nil, engine.StateStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.writeProc(pid, tt.procState, 1, tt.cgroups...)
			for f, content := range tt.files {
				h.write(filepath.Join(h.paths.cgroup, f), content)
			}
			// conmon.pid names another parent, so only the cgroup vouches for the pid.
			h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay",
				fakeContainer{id: id, names: []string{"c"}, pid: pid, conmon: 999})
			got, err := h.engine().List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			wantPID := 0
			if tt.want.HasProcess() {
				wantPID = pid
			}
			if len(got) != 1 || got[0].State != tt.want || got[0].PID != wantPID {
				t.Errorf("got %+v, want %s pid %d", got, tt.want, wantPID)
			}
		})
	}
}

func TestRootlessPIDMustBelongToUser(t *testing.T) {
	uid := os.Getuid()
	id := testID(8)
	const pid = 5151
	tests := []struct {
		name   string
		owner  int
		subuid string
		want   engine.State
	}{
		{"process runs as the user", uid, "", engine.StateRunning},
		{"process runs as a subordinate uid", uid + 1, "alice:" + strconv.Itoa(uid) + ":1\n", engine.StateRunning},
		{"process of another user", uid + 1, "alice:" + strconv.Itoa(uid+100) + ":65536\n", engine.StateStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.write("etc/subuid", tt.subuid)
			h.writeProc(pid, 'S', 1, "0::/user.slice/libpod-"+id+".scope")
			h.writeStorage("g", "r", "overlay", fakeContainer{id: id, pid: pid})
			s := storage{
				storageRoot: storageRoot{Graph: h.path("g"), Run: h.path("r"), Owner: tt.owner, User: "alice"},
				DataName:    "overlay-containers", RunName: "overlay-containers",
			}
			_, state, _ := h.engine().containerState(s, id)
			if state != tt.want {
				t.Errorf("state %s, want %s", state, tt.want)
			}
		})
	}
}

func TestPods(t *testing.T) {
	h := newFakeHost(t)
	pod, infra, member, lone := testID(0xa), testID(0xb), testID(0xc), testID(0xd)
	sysPod, sysMember := testID(0xe), testID(0xf)
	cfg := func(hostname, cgroups string, ann map[string]string) *ociConfig {
		c := &ociConfig{Hostname: hostname, Annotations: ann}
		c.Linux = &struct {
			CgroupsPath string `json:"cgroupsPath"`
		}{cgroups}
		return c
	}
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay",
		fakeContainer{id: infra, names: []string{pod[:12] + "-infra"}, config: cfg("mypod", "/libpod_parent/"+pod+"/libpod-"+infra, nil)},
		fakeContainer{id: member, names: []string{"member"}, config: cfg("", "/libpod_parent/"+pod+"/libpod-"+member,
			map[string]string{annotationSandboxID: infra})},
		fakeContainer{id: lone, names: []string{"lone"}, config: cfg("lone-host", "/libpod_parent/libpod-"+lone, nil)},
		fakeContainer{id: sysMember, names: []string{"sysmember"}, config: cfg("", "machine-libpod_pod_"+sysPod+".slice:libpod:"+sysMember, nil)},
	)
	got, err := h.engine().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		infra:     {LabelPodID: pod, LabelPodInfra: "true", LabelPodName: "mypod"},
		member:    {LabelPodID: pod, LabelPodName: "mypod"},
		lone:      {},
		sysMember: {LabelPodID: sysPod},
	}
	for _, c := range got {
		w := want[c.ID]
		for _, k := range []string{LabelPodID, LabelPodInfra, LabelPodName} {
			if c.Labels[k] != w[k] {
				t.Errorf("%v: label %s = %q, want %q", c.Names, k, c.Labels[k], w[k])
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d containers, want %d", len(got), len(want))
	}
}

func TestOpenOptions(t *testing.T) {
	h := newFakeHost(t)
	h.writeStorage("env/data", "env/run", "overlay", fakeContainer{id: testID(1), names: []string{"from-env"}, pid: os.Getpid(), conmon: os.Getppid()})
	h.writeStorage("flag/data", "flag/run", "overlay", fakeContainer{id: testID(2), names: []string{"from-flag"}})
	envs := map[string]string{
		EnvDataDir: h.path("env/data/overlay-containers"),
		EnvRunDir:  h.path("env/run/overlay-containers"),
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		want      string
		wantState engine.State
		wantErr   error
	}{
		{"environment", nil, envs, "from-env", engine.StateRunning, nil},
		{"flags win over environment", []string{"--podman-datadir", h.path("flag/data/overlay-containers"), "--podman-rundir", h.path("flag/run/overlay-containers")}, envs, "from-flag", engine.StateStopped, nil},
		{"missing data dir", []string{"--podman-datadir", h.path("nowhere/overlay-containers")}, nil, "", "", engine.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := engine.Lookup(Name)
			if !ok {
				t.Fatal("podman is not registered")
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			open := d.Configure(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			e, err := open(engine.Env{Log: testLog(t), Getenv: func(k string) string { return tt.env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.List(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("List error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if len(got) != 1 || got[0].Names[0] != tt.want || got[0].State != tt.wantState {
				t.Errorf("got %+v, want %s %s", got, tt.want, tt.wantState)
			}
		})
	}
}

func TestOpenEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantData string
		wantRun  string
		wantCG   string
		wantErr  bool
	}{
		{"discovery", nil, "", "", "/sys/fs/cgroup", false},
		{"data dir only takes the matching run dir", map[string]string{EnvDataDir: "/d/vfs-containers"}, "/d/vfs-containers", "/run/containers/storage/vfs-containers", "/sys/fs/cgroup", false},
		{"run dir only takes the reference data dir", map[string]string{EnvRunDir: "/r/x"}, "/var/lib/containers/storage/overlay-containers", "/r/x", "/sys/fs/cgroup", false},
		{"cgroup dir", map[string]string{EnvCgroupDir: "/cg"}, "", "", "/cg", false},
		{"relative path", map[string]string{EnvDataDir: "rel/dir"}, "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Open(engine.Env{Log: testLog(t), Getenv: func(k string) string { return tt.env[k] }}, Options{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open error %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var data, run string
			if e.fixed != nil {
				data, run = e.fixed.dataDir(), e.fixed.runDir()
			}
			if data != tt.wantData || run != tt.wantRun || e.paths.cgroup != tt.wantCG {
				t.Errorf("got data %q run %q cgroup %q", data, run, e.paths.cgroup)
			}
		})
	}
}

func TestTOMLString(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"/var/lib/x"`, "/var/lib/x", true},
		{`'/var/lib/x' # comment`, "/var/lib/x", true},
		{`"/a\"b"`, "", false},
		{`"/a" junk`, "", false},
		{`["a"]`, "", false},
		{`"unterminated`, "", false},
	}
	for _, tt := range tests {
		got, ok := tomlString(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("tomlString(%s) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWatchReportsChanges(t *testing.T) {
	uid := strconv.Itoa(os.Getuid())
	h := newFakeHost(t)
	h.write("etc/passwd", "alice:x:"+uid+":100::"+h.path("home/alice")+":/bin/sh\n")
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay", fakeContainer{id: testID(1)})
	h.mkdir("run/containers/storage/overlay-containers/" + testID(1) + "/userdata")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan engine.Event, 16)
	done := make(chan struct{})
	go func() { h.engine().Watch(ctx, events); close(done) }()
	defer func() { cancel(); <-done }()

	expectResync := func(what string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Kind == engine.Resync && ev.Engine == Name {
					return
				}
				t.Fatalf("%s: got %v event, want resync", what, ev.Kind)
			case <-deadline:
				t.Fatalf("%s: no resync", what)
			}
		}
	}
	drain := func() {
		for {
			select {
			case <-events:
			case <-time.After(100 * time.Millisecond):
				return
			}
		}
	}
	expectResync("start")
	steps := []struct {
		name   string
		change func()
	}{
		{"containers.json replaced", func() {
			h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay", fakeContainer{id: testID(1)}, fakeContainer{id: testID(2)})
		}},
		{"pidfile written", func() {
			h.write("run/containers/storage/overlay-containers/"+testID(1)+"/userdata/pidfile", "1")
		}},
		{"state database written", func() { h.write("var/lib/containers/storage/libpod/bolt_state.db", "x") }},
		{"new driver directory", func() {
			h.writeStorage("var/lib/containers/storage", "run/containers/storage", "vfs", fakeContainer{id: testID(3)})
		}},
		{"container of the new driver starts", func() {
			h.write("run/containers/storage/vfs-containers/"+testID(3)+"/userdata/pidfile", "1")
		}},
	}
	for _, st := range steps {
		drain()
		st.change()
		expectResync(st.name)
	}
}

// TestConformanceStateDirs runs the engine contract's suite over a Podman
// state tree laid out as Podman 4 writes it, and over a host without one.
func TestConformanceStateDirs(t *testing.T) {
	h := newFakeHost(t)
	h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay",
		fakeContainer{id: testID(1), names: []string{"web"}},
		fakeContainer{id: testID(2), names: []string{"db"}},
	)
	empty := newFakeHost(t)
	enginetest.Run(t, enginetest.Harness{
		Open:       func(context.Context) (engine.Engine, error) { return h.engine(), nil },
		OpenAbsent: func(context.Context) (engine.Engine, error) { return empty.engine(), nil },
		Expect: []engine.Container{
			{ID: testID(1), Names: []string{"web"}, State: engine.StateStopped},
			{ID: testID(2), Names: []string{"db"}, State: engine.StateStopped},
		},
		Timeout: 10 * time.Second,
	})
}

func TestCgroupMarks(t *testing.T) {
	id := testID(7)
	for path, want := range map[string]bool{
		"libpod_parent/libpod-" + id:                      true,
		"libpod_parent/podabc/libpod-" + id:               true,
		"machine.slice/libpod-" + id + ".scope":           true,
		"machine.slice/libpod-" + id + ".scope/container": true,
		"machine.slice/libpod-conmon-" + id + ".scope":    false,
		"user.slice/user-1000.slice/session-3.scope":      false,
		"docker/" + id: false,
	} {
		if got := engine.CgroupMatches(path, cgroupMarks(id)); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}
