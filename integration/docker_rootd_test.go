//go:build integration

package integration

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/internal/fixtures"
	"github.com/rootd-project/rootd/wire"
)

var (
	codeNoContainer = wire.StatusNoContainer
	codeNotUnique   = -int(syscall.ENOTUNIQ)
	codeNotRunning  = -int(syscall.ESRCH)
)

// expectedCgroup is what PCP's collectors must get for pid on this host:
// the memory controller's line of /proc/PID/cgroup (the unified line on a
// pure v2 host), without its leading slash. It is written independently of
// rootd's own parser, so the two check each other.
func expectedCgroup(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	var unified string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return strings.TrimPrefix(f[2], "/"), nil
			}
		}
		if f[0] == "0" && f[1] == "" {
			unified = strings.TrimPrefix(f[2], "/")
		}
	}
	if unified == "" {
		return "", fmt.Errorf("pid %d: no memory or unified line in %q", pid, b)
	}
	return unified, nil
}

func memoryCgroup(t *testing.T, pid int) string {
	t.Helper()
	cg, err := expectedCgroup(pid)
	if err != nil {
		t.Fatal(err)
	}
	return cg
}

// allDockerIDs lists every container the daemon has, ours or not, since a
// prefix is unique only among all of them.
func allDockerIDs(t *testing.T) []string {
	return strings.Fields(dockerRun(t, "ps", "-aq", "--no-trunc"))
}

// shortestUniquePrefix returns the shortest prefix of id shared by no other ID.
func shortestUniquePrefix(id string, all []string) string {
	for n := 1; n <= len(id); n++ {
		unique := true
		for _, o := range all {
			if o != id && strings.HasPrefix(o, id[:n]) {
				unique = false
				break
			}
		}
		if unique {
			return id[:n]
		}
	}
	return id
}

type dockerCase struct {
	name, id string
	pid      int
	cgroup   string
	host     string
}

// TestDockerThroughRootd resolves live Docker containers through rootd with
// both the Go client and PCP's C library.
func TestDockerThroughRootd(t *testing.T) {
	d := startRootd(t, []string{"PCP_DOCKER_DIR="}, "--engines", "docker")
	c := d.client(t)

	// Start containers until two of ours share a first ID character, so an
	// ambiguous one-character prefix exists. With 16 possible characters
	// this takes a handful.
	var ours []dockerCase
	firstSeen := map[byte]string{}
	var sharedFirst byte
	for i := 0; i < 17 && sharedFirst == 0; i++ {
		name := dockerName(t, "res"+strconv.Itoa(i))
		id := dockerStart(t, name)
		in := dockerInspect(t, id)
		ours = append(ours, dockerCase{name: name, id: id, pid: in.pid, cgroup: memoryCgroup(t, in.pid), host: name + "-host"})
		if _, dup := firstSeen[id[0]]; dup {
			sharedFirst = id[0]
		}
		firstSeen[id[0]] = id
	}
	if sharedFirst == 0 {
		t.Fatal("17 containers and no shared first character: impossible")
	}
	all := allDockerIDs(t)

	t.Run("every form of name", func(t *testing.T) {
		shortest := 64
		for _, oc := range ours {
			uniq := shortestUniquePrefix(oc.id, all)
			shortest = min(shortest, len(uniq))
			queries := []string{oc.name, "/" + oc.name, oc.id, oc.id[:12], uniq}
			for _, q := range queries {
				ctx := ctxT(t, 10*time.Second)
				if pid, err := c.ProcessID(ctx, q); err != nil || pid != oc.pid {
					t.Errorf("Go ProcessID(%q) = %d, %v; docker inspect says %d", q, pid, err, oc.pid)
				}
				if cg, err := c.CgroupName(ctx, q); err != nil || cg != oc.cgroup {
					t.Errorf("Go CgroupName(%q) = %q, %v; /proc says %q", q, cg, err, oc.cgroup)
				}
				if h, err := c.HostName(ctx, q); err != nil || h != oc.host {
					t.Errorf("Go HostName(%q) = %q, %v; want %q", q, h, err, oc.host)
				}
			}
			for i, r := range cLookup(t, d.socket, "pid", queries...) {
				if !r.OK || r.Value != strconv.Itoa(oc.pid) {
					t.Errorf("C pid %q = %+v, want %d", queries[i], r, oc.pid)
				}
			}
			for i, r := range cLookup(t, d.socket, "cgroup", queries...) {
				if !r.OK || r.Value != oc.cgroup {
					t.Errorf("C cgroup %q = %+v, want %q", queries[i], r, oc.cgroup)
				}
			}
			for i, r := range cLookup(t, d.socket, "hostname", queries...) {
				if !r.OK || r.Value != oc.host {
					t.Errorf("C hostname %q = %+v, want %q", queries[i], r, oc.host)
				}
			}
		}
		if shortest > 2 {
			t.Errorf("no container had a 1-2 character unique prefix (shortest %d)", shortest)
		}
	})

	t.Run("wrong names are errors, never guesses", func(t *testing.T) {
		ambiguous := string(sharedFirst)
		// A query sharing only its first character with an ID ('z' is
		// never hex): the reference answers with that container.
		firstCharOnly := ours[0].id[:1] + "zz-not-a-prefix"
		tests := []struct {
			query string
			code  int
			goErr error
		}{
			{ambiguous, codeNotUnique, syscall.ENOTUNIQ},
			{"rootd-it-no-such-container", codeNoContainer, client.ErrNoContainer},
			{firstCharOnly, codeNoContainer, client.ErrNoContainer},
		}
		for _, tc := range tests {
			if _, err := c.ProcessID(ctxT(t, 10*time.Second), tc.query); !errors.Is(err, tc.goErr) {
				t.Errorf("Go ProcessID(%q) = %v, want %v", tc.query, err, tc.goErr)
			}
			for _, op := range []string{"pid", "cgroup", "hostname"} {
				if r := cLookup(t, d.socket, op, tc.query)[0]; r.OK || r.Code != tc.code {
					t.Errorf("C %s %q = %+v, want error %d", op, tc.query, r, tc.code)
				}
			}
		}
		if !strings.Contains(d.Log(), "ambiguous") {
			t.Error("the ambiguity is not in rootd's log")
		}
		// rootctl, as root, names the candidates.
		out, _ := exec.Command(bins.rootctl, "-s", d.socket, "pid", ambiguous).CombinedOutput()
		if !strings.Contains(string(out), "ambiguous") || strings.Count(string(out), "docker:") < 2 {
			t.Errorf("rootctl does not list the candidates: %s", out)
		}
	})

	t.Run("a container created a moment ago resolves at once", func(t *testing.T) {
		for i := range 5 {
			name := dockerName(t, "fresh"+strconv.Itoa(i))
			id := dockerStart(t, name) // returns when docker run returns
			if pid, err := c.ProcessID(ctxT(t, 10*time.Second), name); err != nil || pid != dockerInspect(t, id).pid {
				t.Fatalf("fresh container %s: %d, %v", name, pid, err)
			}
		}
	})

	t.Run("stopped, renamed, removed", func(t *testing.T) {
		victim := ours[len(ours)-1]
		dockerRun(t, "stop", "-t", "0", victim.name)
		eventually(t, 5*time.Second, "stopped container reports not running", func() (bool, string) {
			_, err := c.ProcessID(ctxT(t, 5*time.Second), victim.name)
			return errors.Is(err, syscall.ESRCH), fmt.Sprint(err)
		})
		if r := cLookup(t, d.socket, "pid", victim.name)[0]; r.Code != codeNotRunning {
			t.Errorf("C pid of stopped container = %+v, want %d", r, codeNotRunning)
		}

		renamed := ours[0]
		newName := renamed.name + "-renamed"
		dockerRun(t, "rename", renamed.name, newName)
		if pid, err := c.ProcessID(ctxT(t, 10*time.Second), newName); err != nil || pid != renamed.pid {
			t.Errorf("new name right after rename: %d, %v", pid, err)
		}
		eventually(t, 5*time.Second, "old name gone after rename", func() (bool, string) {
			_, err := c.ProcessID(ctxT(t, 5*time.Second), renamed.name)
			return errors.Is(err, client.ErrNoContainer), fmt.Sprint(err)
		})

		gone := ours[1]
		dockerRun(t, "rm", "-f", gone.id)
		eventually(t, 5*time.Second, "removed container gone", func() (bool, string) {
			_, err := c.ProcessID(ctxT(t, 5*time.Second), gone.id[:12])
			return errors.Is(err, client.ErrNoContainer), fmt.Sprint(err)
		})
	})
}

// TestDockerDaemonRestartThroughRootd stops dockerd under a running rootd:
// Docker lookups fail cleanly, everything else keeps working, and once the
// daemon is back rootd resolves again without being restarted.
func TestDockerDaemonRestartThroughRootd(t *testing.T) {
	d := startRootd(t, []string{"PCP_DOCKER_DIR="}, "--engines", "docker,static")
	c := d.client(t)
	before := dockerName(t, "before")
	dockerStart(t, before)
	if _, err := c.ProcessID(ctxT(t, 10*time.Second), before); err != nil {
		t.Fatal(err)
	}

	pid := dockerdPID(t)
	syscall.Kill(pid, syscall.SIGTERM)
	t.Cleanup(func() { restartDockerd(t) }) // never leave the machine without dockerd
	eventually(t, 60*time.Second, "dockerd exits", func() (bool, string) {
		return syscall.Kill(pid, 0) != nil, ""
	})
	eventually(t, 10*time.Second, "lookups fail cleanly while dockerd is down", func() (bool, string) {
		_, err := c.ProcessID(ctxT(t, 10*time.Second), before)
		var se wire.StatusError
		return errors.As(err, &se), fmt.Sprint(err)
	})
	if r := cLookup(t, d.socket, "pid", before)[0]; r.OK {
		t.Errorf("C pid while dockerd is down = %+v, want an error", r)
	}
	// The daemon itself is unaffected.
	if _, err := c.HostNameByPID(ctxT(t, 5*time.Second), os.Getpid()); err != nil {
		t.Fatalf("rootd stopped serving while dockerd was down: %v", err)
	}

	restartDockerd(t)
	after := dockerName(t, "after")
	id := dockerStart(t, after)
	eventually(t, 10*time.Second, "resolving again after dockerd returns", func() (bool, string) {
		pid, err := c.ProcessID(ctxT(t, 10*time.Second), after)
		return err == nil && pid == dockerInspect(t, id).pid, fmt.Sprint(pid, err)
	})
	// The container from before the restart was stopped with the daemon.
	eventually(t, 10*time.Second, "old container reported stopped", func() (bool, string) {
		_, err := c.ProcessID(ctxT(t, 10*time.Second), before)
		return errors.Is(err, syscall.ESRCH), fmt.Sprint(err)
	})
}

func restartDockerd(t *testing.T) {
	t.Helper()
	out, err := exec.Command("sh", dockerFindScript(t, "scripts/engines/docker.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("restarting dockerd: %v\n%s", err, out)
	}
}

// unpackFixture extracts one of PCP's QA tarballs into a temporary
// directory and returns that directory.
func unpackFixture(t *testing.T, name string) string {
	t.Helper()
	path, err := fixtures.PCPQA(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, h.Name)
		if !strings.HasPrefix(target, dir+string(os.PathSeparator)) {
			t.Fatalf("%s: entry %q escapes", name, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(target), 0o755)
			b, _ := io.ReadAll(tr)
			os.WriteFile(target, b, 0o644)
		}
	}
}

// TestPCPQAFixturesThroughRootd serves PCP's own QA Docker state
// directories, as PCP's QA does (PCP_DOCKER_DIR), to PCP's C client.
// Names resolve as PCP's pmdaroot resolves them, but the PIDs the files
// record belong to the machines the fixtures were made on: no process
// here is in those containers' cgroups, so rootd refuses them as "not
// running" where pmdaroot answers with them (see docs/engines.md,
// "Verified PIDs").
func TestPCPQAFixturesThroughRootd(t *testing.T) {
	ok := func(v int) int { return codeNotRunning } // pmdaroot answers v
	tests := []struct {
		fixture string
		queries map[string]int // query -> PID, or a negative status
	}{
		{"containers-docker-1.3.2-root-001.tgz", map[string]int{
			"jolly_sinoussi": ok(32471), "/dreamy_elion": ok(9579), "2cb8e8": ok(32471),
			"d":                ok(9579), // d2e8...: a one-character unique prefix
			"2":                codeNotUnique,
			"desperate_turing": codeNotRunning, // paused, but the file records no PID
		}},
		{"containers-docker-1.2.0-root-002.tgz", map[string]int{
			"jolly_tesla": codeNotRunning, "781d": codeNotRunning, "backstabbing": codeNoContainer,
		}},
		{"containers-docker-1.5.0-root-003.tgz", map[string]int{
			"jovial_lovelace": ok(18720), "c": ok(18720), "cz": codeNoContainer,
		}},
		{"containers-docker-1.10.3-root-004.tgz", map[string]int{
			"e": codeNotUnique, "e1": codeNotRunning, "tender_galileo": codeNotRunning, "happy": codeNoContainer,
		}},
		{"containers-docker-1.12.6-root-006.tgz", map[string]int{
			"k8s_shipshift-client_shipshift-client-client-cfme.yaml-11-3cq70_dh-shipshift-staging_43e1c477-180a-11e8-8537-d4bed9f4c83b_0": ok(72769),
			"dh-shipshift-staging/shipshift-client-client-cfme.yaml-11-3cq70/shipshift-client":                                            ok(72769),
			"a02d125b5645": ok(72769),
		}},
		{"containers-docker-titan-root-007.tgz", map[string]int{
			"25ad5c4c-4dd2-49a4-ab75-5e61e4568b0b": ok(3219766), "e41d": ok(3219766), "ex": codeNoContainer,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			root := unpackFixture(t, tc.fixture)
			d := startRootd(t, []string{"PCP_DOCKER_DIR=" + filepath.Join(root, "var/lib/docker")}, "--engines", "docker")
			var names []string
			for q := range tc.queries {
				names = append(names, q)
			}
			for i, r := range cLookup(t, d.socket, "pid", names...) {
				want := tc.queries[names[i]]
				if want > 0 && (!r.OK || r.Value != strconv.Itoa(want)) || want < 0 && (r.OK || r.Code != want) {
					t.Errorf("C pid %q = %+v, want %d", names[i], r, want)
				}
			}
		})
	}
}
