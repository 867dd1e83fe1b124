//go:build integration

package integration

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCClientProcessControl drives pmcd's agent-control calls through PCP's
// own library: start cat on pipes, echo through it, kill it, reap it.
func TestCClientProcessControl(t *testing.T) {
	d := startRootd(t, nil, "--engines", "static")
	out, err := exec.Command(bins.rootclient, d.socket, "agent").CombinedOutput()
	t.Logf("C client:\n%s", out)
	if err != nil {
		t.Fatalf("C client agent steps failed: %v", err)
	}
	for _, step := range []string{"ok start", "ok echo", "ok terminate", "ok wait", "ok refuse-foreign"} {
		if !strings.Contains(string(out), step) {
			t.Errorf("missing %q", step)
		}
	}
}

// TestCClientByPIDHostname uses the Go client for the by-PID form, since
// libpcp_pmda 6.0.3 crashes on it before sending anything.
func TestByPIDHostname(t *testing.T) {
	d := startRootd(t, nil, "--engines", "static")
	c := d.client(t)
	want, _ := os.Hostname()
	if got, err := c.HostNameByPID(ctxT(t, 5*time.Second), os.Getpid()); err != nil || got != want {
		t.Fatalf("HostNameByPID = %q, %v; want %q", got, err, want)
	}
	if _, err := c.HostNameByPID(ctxT(t, 5*time.Second), 1<<22+777); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("unknown pid: %v, want ESRCH", err)
	}
}

const throwawayUser = "rootd-it-nobody"

// throwaway returns the uid and gid of a system user with no rights,
// creating it on first use.
func throwaway(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup(throwawayUser)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", throwawayUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
		if u, err = user.Lookup(throwawayUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// asUser runs the C client under uid/gid with no supplementary groups.
func asUser(uid, gid int, args ...string) (string, error) {
	argv := append([]string{"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups", bins.rootclient}, args...)
	out, err := exec.Command("setpriv", argv...).CombinedOutput()
	return string(out), err
}

// TestPeerCredentials opens the socket's file permissions to everyone so
// that only rootd's SO_PEERCRED check stands between a stranger and it.
func TestPeerCredentials(t *testing.T) {
	uid, gid := throwaway(t)
	os.Chmod(bins.dir, 0o755)
	os.Chmod(bins.rootclient, 0o755)

	open := func(d *daemon) {
		os.Chmod(filepath.Dir(filepath.Dir(d.socket)), 0o755)
		os.Chmod(filepath.Dir(d.socket), 0o755)
		os.Chmod(d.socket, 0o666)
	}

	d := startRootd(t, nil, "--engines", "static")
	open(d)
	out, err := asUser(uid, gid, d.socket, "connect")
	if err == nil || strings.Contains(out, "ok connected") {
		t.Fatalf("stranger uid %d was served:\n%s", uid, out)
	}
	eventually(t, 5*time.Second, "refusal logged", func() (bool, string) {
		return strings.Contains(d.Log(), "refusing client") && strings.Contains(d.Log(), "peer_uid="+strconv.Itoa(uid)), ""
	})
	// Root is still served.
	if out, err := exec.Command(bins.rootclient, d.socket, "connect").CombinedOutput(); err != nil {
		t.Fatalf("root refused: %v\n%s", err, out)
	}

	allowed := startRootd(t, nil, "--engines", "static", "--allow-uid", throwawayUser)
	open(allowed)
	if out, err := asUser(uid, gid, allowed.socket, "connect"); err != nil {
		t.Fatalf("--allow-uid %s not honoured: %v\n%s", throwawayUser, err, out)
	}
	byGroup := startRootd(t, nil, "--engines", "static", "--allow-gid", strconv.Itoa(gid))
	open(byGroup)
	if out, err := asUser(uid, gid, byGroup.socket, "connect"); err != nil {
		t.Fatalf("--allow-gid %d not honoured: %v\n%s", gid, err, out)
	}
}

// TestSecondInstanceRefused: a live socket is never stolen.
func TestSecondInstanceRefused(t *testing.T) {
	d := startRootd(t, nil, "--engines", "static")
	out, err := exec.Command(bins.rootd, "--config", os.DevNull, "-s", d.socket, "--engines", "static").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second rootd on a live socket: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "another server is listening") {
		t.Errorf("message does not say why:\n%s", out)
	}
	// The first one still answers.
	if _, err := d.client(t).HostNameByPID(ctxT(t, 5*time.Second), os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
