package podman

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzStorage feeds arbitrary containers.json, pidfile, conmon.pid, OCI
// config.json and /proc/PID/{stat,cgroup} contents through List on a fake
// host: nothing may panic, every container listed has a 64-hex-digit ID
// (IDs become paths), and a PID is reported only for a running or paused
// container and only if it is the one live (fake) process.
func FuzzStorage(f *testing.F) {
	id := testID(1)
	const pid = "4242"
	good := `[{"id":"` + id + `","names":["web","/alias"],"metadata":"{\"image-name\":\"localhost/bb:latest\"}"}]`
	stat := pid + " (sleep (x)) S 4240 4242 0 0 -1 4194560 0 0\n"
	for _, s := range []struct{ containers, pidfile, conmon, config, stat, cgroup string }{
		{good, pid + "\n", "4240\n", `{"hostname":"web"}`, stat, "0::/machine.slice/libpod-" + id + ".scope\n"},
		{good, pid, "4240", `{"linux":{"cgroupsPath":"machine-libpod_pod_` + testID(2) + `.slice:libpod:` + id + `"},"annotations":{"io.kubernetes.cri-o.SandboxID":"` + testID(3) + `"}}`, stat, "0::/elsewhere\n"},
		{good, pid, "", `{}`, pid + " (a) b) Z 1 1\n", "0::/\n"},
		{`[{"id":"../../etc","names":[""]},{"id":"` + id + `"},{"id":"` + id + `"}]`, "-1", "x", `{"linux":null}`, "garbage", ""},
		{`[{"id":"` + id + `","metadata":"{"}]`, "99999999999999999999", "4240", "[", pid + " (x) R notanumber", "0::/" + id + "\n"},
		{`{`, "", "", "", "", ""},
	} {
		f.Add([]byte(s.containers), []byte(s.pidfile), []byte(s.conmon), []byte(s.config), []byte(s.stat), []byte(s.cgroup))
	}
	f.Fuzz(func(t *testing.T, containers, pidfile, conmon, config, stat, cgroup []byte) {
		h := newFakeHost(t)
		graph, run := "var/lib/containers/storage", "run/containers/storage"
		h.writeStorage(graph, run, "overlay", fakeContainer{id: id})
		h.write(graph+"/overlay-containers/containers.json", string(containers))
		ud := run + "/overlay-containers/" + id + "/userdata/"
		h.write(ud+"pidfile", string(pidfile))
		h.write(ud+"conmon.pid", string(conmon))
		h.write(graph+"/overlay-containers/"+id+"/userdata/config.json", string(config))
		h.write(filepath.Join(h.paths.proc, pid, "stat"), string(stat))
		h.write(filepath.Join(h.paths.proc, pid, "cgroup"), string(cgroup))

		got, err := h.engine().List(context.Background())
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, c := range got {
			if !containerID.MatchString(c.ID) || c.Engine != Name {
				t.Fatalf("listed %+v", c)
			}
			for _, n := range c.Names {
				if n == "" || strings.HasPrefix(n, "/") {
					t.Fatalf("name %q", n)
				}
			}
			if c.PID != 0 && (!c.State.HasProcess() || c.PID != 4242) {
				t.Fatalf("pid %d in state %s", c.PID, c.State)
			}
		}
	})
}
