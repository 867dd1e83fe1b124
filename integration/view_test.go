//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/wire"
)

// dialAs connects to socket from a thread whose effective uid and gid, and
// supplementary groups, are the given ones, so that the daemon's
// SO_PEERCRED sees that user (and the socket's 0660 root:pcp mode is
// checked against it). The thread is never handed back: it ends with its
// goroutine, so the rest of the test stays root.
func dialAs(uid, gid int, socket string) (*net.UnixConn, error) {
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		// Raw syscalls change this thread only (Go's wrappers change them
		// all). Groups and gid first: they need root.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			ch <- result{nil, fmt.Errorf("setgroups: %w", e)}
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
			ch <- result{nil, fmt.Errorf("setresgid: %w", e)}
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- result{nil, fmt.Errorf("setresuid: %w", e)}
			return
		}
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// TestDaemonViewThroughSocket: a real rootd on the live engines shows an
// operator in the pcp group (not root, allowed by --allow-gid) exactly the
// containers its index holds: LIST has the test's Docker container with
// the ID, names, PID and cgroup the engine and PCP's lookups give;
// DESCRIBE finds it by name, ID prefix and ENGINE:NAME, gives candidates
// for an ambiguous prefix and finds it by its init PID; STATUS lists the
// engines. Labels other than the Kubernetes identity go to root only. A
// peer that is not allowed is refused before any of it.
func TestDaemonViewThroughSocket(t *testing.T) {
	strangerUID, strangerGID := throwaway(t)
	_, pcpGID := pcpUser(t)
	tag := pcpTag(t)
	name := tag + "-view"
	id := dockerRun(t, "run", "-d", "--name", name, "--hostname", name+"-host", "--network", "none",
		"--label", "rootd.it.secret=hunter2", dockerImage, "sleep", "600")
	t.Cleanup(func() { exec.Command(dockerCLI(), "rm", "-f", id).Run() })
	insp := dockerInspect(t, id)

	d := startRootd(t, append(mixedEnv(), "PCP_USER=", "PCP_GROUP="), "--allow-gid", strconv.Itoa(pcpGID))
	for _, p := range []string{filepath.Dir(filepath.Dir(d.socket)), filepath.Dir(d.socket)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t, 60*time.Second)
	root := d.client(t)
	conn, err := dialAs(strangerUID, pcpGID, d.socket)
	if err != nil {
		t.Fatalf("connecting as uid %d in group pcp: %v", strangerUID, err)
	}
	op, err := client.New(ctx, conn)
	if err != nil {
		t.Fatalf("pcp-group peer refused: %v\n%s", err, d.Log())
	}
	defer op.Close()
	if !op.HasView() {
		t.Fatalf("rootd does not announce the view (features %#x)", op.Features())
	}

	// The index is built and has the container.
	var st wire.Status
	eventually(t, 30*time.Second, "rootd ready with the container", func() (bool, string) {
		st, err = op.Status(ctx)
		if err != nil || !st.Ready {
			return false, fmt.Sprintf("%+v %v", st, err)
		}
		_, err := op.Describe(ctx, id)
		return err == nil, fmt.Sprint(err)
	})
	engines := map[string]wire.EngineStatus{}
	for _, e := range st.Engines {
		engines[e.Name] = e
	}
	if e, ok := engines["docker"]; !ok || e.Health != "available" || e.Containers < 1 || e.States["running"] < 1 {
		t.Errorf("STATUS docker engine: %+v (all: %+v)", e, st.Engines)
	}
	for _, want := range []string{"podman", "containerd", "lxc"} {
		if _, ok := engines[want]; !ok {
			t.Errorf("STATUS lists no %s engine: %+v", want, st.Engines)
		}
	}
	if st.Version == "" || st.Started.IsZero() || st.Containers < 1 {
		t.Errorf("STATUS %+v", st)
	}

	// LIST: the container as the engine and PCP's own lookups have it.
	cgroup, err := root.CgroupName(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	list, err := op.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(c wire.ContainerInfo) bool { return c.ID == id })
	if i < 0 {
		t.Fatalf("LIST (%d containers) lacks %s", len(list), id)
	}
	got := list[i]
	want := wire.ContainerInfo{Engine: "docker", ID: insp.id, Names: []string{name}, State: "running", PID: insp.pid, Cgroup: cgroup, LabelsRedacted: true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("LIST as the pcp-group peer:\n got %+v\nwant %+v", got, want)
	}
	rootList, err := root.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j := slices.IndexFunc(rootList, func(c wire.ContainerInfo) bool { return c.ID == id }); j < 0 ||
		rootList[j].Labels["rootd.it.secret"] != "hunter2" || rootList[j].LabelsRedacted {
		t.Errorf("LIST as root does not carry the labels: %+v", rootList[j])
	}
	// Both peers see the same containers. The two listings are taken a
	// moment apart on live engines, where the previous test's containers
	// may still be going: ask again until they agree.
	eventually(t, 10*time.Second, "root and the pcp-group peer list the same containers", func() (bool, string) {
		a, aerr := root.List(ctx)
		b, berr := op.List(ctx)
		ids := func(l []wire.ContainerInfo) []string {
			out := make([]string, len(l))
			for i, c := range l {
				out[i] = c.Engine + ":" + c.ID
			}
			slices.Sort(out)
			return out
		}
		return aerr == nil && berr == nil && slices.Equal(ids(a), ids(b)),
			fmt.Sprintf("root %v %v; pcp-group peer %v %v", ids(a), aerr, ids(b), berr)
	})

	// DESCRIBE by every form of name, and by the init PID.
	prefix := uniquePrefix(t, id, list)
	for _, q := range []string{name, id, prefix, "docker:" + name} {
		c, err := op.Describe(ctx, q)
		if err != nil || c.ID != id || c.PID != insp.pid || c.Cgroup != cgroup || c.Hostname != name+"-host" {
			t.Errorf("Describe(%q) = %+v, %v", q, c, err)
		}
	}
	if c, err := op.DescribePID(ctx, insp.pid); err != nil || c.ID != id || c.Hostname != name+"-host" {
		t.Errorf("DescribePID(%d) = %+v, %v", insp.pid, c, err)
	}
	if _, err := op.Describe(ctx, tag+"-nosuch"); !errors.Is(err, client.ErrNoContainer) {
		t.Errorf("Describe of an unknown name: %v", err)
	}

	// An ambiguous prefix: the candidates come back.
	amb := ambiguousPrefix(t, ctx, op, id)
	_, err = op.Describe(ctx, amb)
	var ae *client.AmbiguousError
	if !errors.Is(err, syscall.ENOTUNIQ) || !errors.As(err, &ae) || len(ae.Candidates) < 2 ||
		!slices.ContainsFunc(ae.Candidates, func(c wire.ContainerInfo) bool { return c.ID == id }) {
		t.Errorf("Describe(%q) = %v; want ENOTUNIQ with %s among the candidates", amb, err, id)
	}
	for _, c := range ae.Candidates {
		if !strings.HasPrefix(c.ID, amb) {
			t.Errorf("candidate %s does not start with %q", c.ID, amb)
		}
	}

	// A peer that is not allowed never gets as far as INFO. The socket is
	// opened to everyone first, so that rootd's SO_PEERCRED check, not the
	// socket's mode, is what refuses it.
	if err := os.Chmod(d.socket, 0o666); err != nil {
		t.Fatal(err)
	}
	conn, err = dialAs(strangerUID, strangerGID, d.socket)
	if err != nil {
		t.Fatalf("connecting as uid %d gid %d: %v", strangerUID, strangerGID, err)
	}
	if c, err := client.New(ctxT(t, 5*time.Second), conn); err == nil {
		c.Close()
		t.Errorf("uid %d outside the pcp group was served", strangerUID)
	}
	eventually(t, 5*time.Second, "refusal logged", func() (bool, string) {
		return strings.Contains(d.Log(), "refusing client") && strings.Contains(d.Log(), "peer_uid="+strconv.Itoa(strangerUID)), ""
	})
}

// uniquePrefix is the shortest prefix of id that no other listed
// container's ID starts with and that is nobody's name or ID.
func uniquePrefix(t *testing.T, id string, list []wire.ContainerInfo) string {
	t.Helper()
	for n := 4; n < len(id); n++ {
		p := id[:n]
		if !slices.ContainsFunc(list, func(c wire.ContainerInfo) bool {
			return c.ID != id && strings.HasPrefix(c.ID, p) || c.ID == p || slices.Contains(c.Names, p)
		}) {
			return p
		}
	}
	t.Fatalf("no unique prefix of %s", id)
	return ""
}

// ambiguousPrefix returns the first character of id once another
// container's ID starts with it too, creating (not starting) Docker
// containers until one does; a character that is some container's name or
// whole ID would not be a prefix query, and is not used.
func ambiguousPrefix(t *testing.T, ctx context.Context, c *client.Client, id string) string {
	t.Helper()
	p := id[:1]
	for i := 0; ; i++ {
		list, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range list {
			if x.ID == p || slices.Contains(x.Names, p) {
				t.Fatalf("%q is a container's name or ID", p)
			}
			if strings.HasPrefix(x.ID, p) {
				n++
			}
		}
		if n >= 2 {
			return p
		}
		if i == 64 {
			t.Fatalf("no second container with an ID starting %q", p)
		}
		extra := dockerRun(t, "create", "--network", "none", dockerImage, "true")
		t.Cleanup(func() { exec.Command(dockerCLI(), "rm", "-f", extra).Run() })
		// Wait until the index has it.
		eventually(t, 10*time.Second, "created container indexed", func() (bool, string) {
			_, err := c.Describe(ctx, extra)
			return err == nil || errors.Is(err, syscall.ESRCH), fmt.Sprint(err)
		})
	}
}
