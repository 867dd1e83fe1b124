package docker

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/engine"
)

// FuzzDiskConfig feeds arbitrary config.v2.json (or legacy config.json)
// contents, and an arbitrary /proc/PID/cgroup for the process they name,
// through the disk reader's parsing and PID verification: nothing may
// panic, and a container that is kept has an ID, names without slashes, a
// PID only when it has a process, and, when verified, that PID only if its
// cgroup names the container.
func FuzzDiskConfig(f *testing.F) {
	const id = "e137109040f53c67031325695ae541a3bf383c7b015af0fd718a412cc0f32da1"
	for _, s := range []struct {
		config, cgroup string
		legacy         bool
	}{
		{`{"ID":"` + id + `","Name":"/web","State":{"Running":true,"Pid":4242},"Config":{"Labels":{"a":"b"}}}`, "0::/system.slice/docker-" + id + ".scope\n", false},
		{`{"ID":"` + id + `","Name":"/k8s_c_pod_ns_0f1e_0","State":{"Paused":true,"Pid":4242}}`, "11:memory:/docker/" + id + "\n", false},
		{`{"ID":"` + id + `","Name":"/x","State":{"Running":true,"Restarting":true,"Pid":-1}}`, "", false},
		{`{"ID":"other","Name":"/a/b","State":{"Running":true,"Pid":4242},"Config":null}`, "0::/elsewhere\n", true},
		{`{"Name":"","State":{"Running":false,"Pid":99999999999}}`, "", true},
		{`{"ID":1}`, "", false},
		{`[`, "", false},
	} {
		f.Add([]byte(s.config), []byte(s.cgroup), s.legacy)
	}
	dir := f.TempDir()
	root := filepath.Join(dir, "docker")
	proc := filepath.Join(dir, "proc")
	cdir := filepath.Join(root, "containers", id)
	for _, d := range []string{cdir, filepath.Join(proc, "4242")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, config, cgroup []byte, legacy bool) {
		name, other := configV2, configLegacy
		if legacy {
			name, other = configLegacy, configV2
		}
		os.Remove(filepath.Join(cdir, other))
		if err := os.WriteFile(filepath.Join(cdir, name), config, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), cgroup, 0o644); err != nil {
			t.Fatal(err)
		}
		rt, err := os.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		for _, verify := range []bool{false, true} {
			r := &diskReader{dir: root, log: log, verifyPIDs: verify, procRoot: proc}
			c, ok := r.readContainer(rt, id)
			if !ok {
				continue
			}
			if c.Engine != Name || c.ID == "" {
				t.Fatalf("container %+v", c)
			}
			for _, n := range c.Names {
				if n == "" || strings.Contains(n, "/") {
					t.Fatalf("name %q", n)
				}
			}
			if c.PID < 0 || c.PID > 0 && !c.State.HasProcess() {
				t.Fatalf("pid %d in state %s", c.PID, c.State)
			}
			if verify {
				if c.State == engine.StateRestarting {
					t.Fatal("verified container still restarting")
				}
				if c.State.HasProcess() && (c.PID != 4242 || !strings.Contains(string(cgroup), c.ID)) {
					t.Fatalf("verified %s with pid %d and cgroup %q", c.State, c.PID, cgroup)
				}
			}
		}
	})
}
