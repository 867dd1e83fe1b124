package podman

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeHost is a temporary tree laid out like a host running podman.
type fakeHost struct {
	t     *testing.T
	root  string
	paths hostPaths
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	h := &fakeHost{t: t, root: root, paths: hostPaths{
		storageConfs:  []string{filepath.Join(root, "etc/containers/storage.conf")},
		rootfulGraph:  filepath.Join(root, "var/lib/containers/storage"),
		rootfulRun:    filepath.Join(root, "run/containers/storage"),
		libpodTmp:     filepath.Join(root, "run/libpod"),
		passwd:        filepath.Join(root, "etc/passwd"),
		subuid:        filepath.Join(root, "etc/subuid"),
		homeParent:    filepath.Join(root, "home"),
		userRunParent: filepath.Join(root, "run/user"),
		tmp:           filepath.Join(root, "tmp"),
		proc:          filepath.Join(root, "proc"),
		cgroup:        filepath.Join(root, "sys/fs/cgroup"),
	}}
	for _, d := range []string{"etc", "home", "run/user", "tmp", "proc", "sys/fs/cgroup"} {
		h.mkdir(d)
	}
	h.write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
	return h
}

func (h *fakeHost) path(rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(h.root, rel)
}

func (h *fakeHost) mkdir(rel string) string {
	h.t.Helper()
	p := h.path(rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *fakeHost) write(rel, content string) string {
	h.t.Helper()
	p := h.path(rel)
	h.mkdir(filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *fakeHost) engine() *Engine {
	return newEngine(testLog(h.t), h.paths, nil)
}

// fakeContainer is one container to lay out in a storage.
type fakeContainer struct {
	id     string
	names  []string
	pid    int // written to the pidfile when non-zero
	conmon int // written to conmon.pid when non-zero
	config *ociConfig
}

// writeStorage writes containers.json below graph/driver-containers and
// each container's userdata below graph and run.
func (h *fakeHost) writeStorage(graph, run, driver string, cs ...fakeContainer) {
	h.t.Helper()
	type rec struct {
		ID       string   `json:"id"`
		Names    []string `json:"names"`
		Metadata string   `json:"metadata"`
	}
	recs := []rec{}
	h.mkdir(fmt.Sprintf("%s/%s-containers", run, driver))
	for _, c := range cs {
		recs = append(recs, rec{c.id, c.names, `{"image-name":"localhost/bb:latest"}`})
		ud := fmt.Sprintf("%s/%s-containers/%s/userdata", run, driver, c.id)
		h.mkdir(ud)
		if c.pid != 0 {
			h.write(ud+"/pidfile", strconv.Itoa(c.pid))
		}
		if c.conmon != 0 {
			h.write(ud+"/conmon.pid", strconv.Itoa(c.conmon)+"\n")
		}
		if c.config != nil {
			data, err := json.Marshal(c.config)
			if err != nil {
				h.t.Fatal(err)
			}
			h.write(fmt.Sprintf("%s/%s-containers/%s/userdata/config.json", graph, driver, c.id), string(data))
		}
	}
	data, err := json.Marshal(recs)
	if err != nil {
		h.t.Fatal(err)
	}
	h.write(fmt.Sprintf("%s/%s-containers/containers.json", graph, driver), string(data))
}

// writeProc fakes /proc/PID for a process with the given state, parent and
// cgroup lines.
func (h *fakeHost) writeProc(pid int, state byte, ppid int, cgroups ...string) {
	h.t.Helper()
	dir := filepath.Join(h.paths.proc, strconv.Itoa(pid))
	h.write(dir+"/stat", fmt.Sprintf("%d (sleep (x)) %c %d %d 0 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0\n", pid, state, ppid, pid))
	h.write(dir+"/cgroup", strings.Join(cgroups, "\n")+"\n")
}

func testID(n int) string { return fmt.Sprintf("%064x", n) }

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
