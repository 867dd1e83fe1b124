package main

// These tests run rootd as a real process (the test binary re-executes
// itself as the daemon) to see what only a process can show: signals, exit
// statuses, the socket file left behind, what systemd is told.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
)

const daemonEnv = "ROOTD_TEST_RUN_AS_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(daemonEnv) == "1" {
		os.Exit(run(withTestConfig(os.Args[1:]), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// withTestConfig adds --config /dev/null to the arguments of a daemon a
// test starts, unless they name a configuration file: the host's
// /etc/rootd/rootd.conf must not change what a test runs.
func withTestConfig(args []string) []string {
	for _, a := range args {
		if a == "--config" || a == "-config" || strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=") {
			return args
		}
	}
	return append([]string{"--config", os.DevNull}, args...)
}

type daemon struct {
	cmd    *exec.Cmd
	socket string
	done   chan error
}

// shortDir is a root-owned 0700 directory with a name short enough for a
// socket path (108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rdm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs rootd with args on a fresh socket (unless args has -s),
// standard error to stderr, and waits until it greets a client.
func start(t *testing.T, stderr io.Writer, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{socket: filepath.Join(shortDir(t), "pmcd", "root.socket"), done: make(chan error, 1)}
	args = append([]string{"-s", d.socket, "--engines", "static"}, args...)
	d.cmd = exec.Command(os.Args[0], args...)
	d.cmd.Env = append(append(os.Environ(), daemonEnv+"=1"), env...)
	d.cmd.Stderr = stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	d.mustServe(t)
	return d
}

// mustServe connects and reads the greeting, failing if rootd has exited.
func (d *daemon) mustServe(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := client.Connect(ctx, d.socket)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("rootd exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rootd does not answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires exit status 0.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("rootd exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rootd did not exit after SIGTERM")
	}
}

// waitFile waits until the file at path contains want.
func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it holds:\n%s", path, want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logrotate moves the log away and sends SIGHUP: rootd writes to a new file
// at the old path and keeps serving.
func TestSIGHUPReopensLog(t *testing.T) {
	logPath := filepath.Join(shortDir(t), "rootd.log")
	d := start(t, io.Discard, nil, "-l", logPath)
	waitFile(t, logPath, "rootd listening")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFile(t, logPath, "SIGHUP: log file reopened")
	d.mustServe(t)
	d.stop(t)
	if b, _ := os.ReadFile(logPath + ".1"); strings.Contains(string(b), "reopened") || !strings.Contains(string(b), "rootd listening") {
		t.Errorf("rotated file:\n%s", b)
	}
	waitFile(t, logPath, "rootd stopped")
}

func TestSIGHUPWithoutLogFile(t *testing.T) {
	errPath := filepath.Join(shortDir(t), "stderr")
	f, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := start(t, f, nil)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFile(t, errPath, "nothing to reopen")
	d.mustServe(t)
	d.stop(t)
}

// With standard error on a pipe nobody reads, every log write fails with
// EPIPE: rootd must live on (Go kills a program on SIGPIPE from fd 2 unless
// the signal is notified) and exit 0 when told to.
func TestBrokenStderrPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	d := start(t, w, nil) // it logged "rootd listening" before serving
	w.Close()
	for range 3 {
		d.cmd.Process.Signal(syscall.SIGHUP) // one more log line each
		d.mustServe(t)
	}
	d.stop(t)
}

// Another server took the socket path while rootd ran: on SIGTERM rootd
// leaves that server's socket alone.
func TestSocketTakenOverSurvivesExit(t *testing.T) {
	logPath := filepath.Join(shortDir(t), "rootd.log")
	d := start(t, io.Discard, nil, "-l", logPath)
	if err := os.Remove(d.socket); err != nil {
		t.Fatal(err)
	}
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	d.stop(t)
	c, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatalf("the other server's socket did not survive rootd's exit: %v", err)
	}
	c.Close()
	waitFile(t, logPath, "socket path was taken over")
}

// Under systemd (Type=notify) rootd says READY=1 once serving and
// STOPPING=1 on SIGTERM, on an abstract socket as systemd uses.
func TestReadinessNotification(t *testing.T) {
	addr := fmt.Sprintf("@rootd-test-notify-%d", os.Getpid())
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	read := func() string {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 512)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	d := start(t, io.Discard, []string{"NOTIFY_SOCKET=" + addr})
	if got := read(); got != "READY=1" {
		t.Errorf("first notification %q, want READY=1", got)
	}
	d.stop(t)
	if got := read(); got != "STOPPING=1" {
		t.Errorf("notification at stop %q, want STOPPING=1", got)
	}
}

// Unsafe paths stop rootd at start, with status 1 and a reason.
func TestRefusesUnsafePaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
	const nobody = 65534
	tests := []struct {
		name  string
		setup func(dir string) []string // returns the arguments
		want  string
	}{
		{"log path is a symlink", func(dir string) []string {
			os.WriteFile(dir+"/secret", nil, 0o600)
			os.Symlink(dir+"/secret", dir+"/rootd.log")
			return []string{"-s", dir + "/root.socket", "-l", dir + "/rootd.log"}
		}, "symbolic link"},
		{"log file owned by nobody", func(dir string) []string {
			os.WriteFile(dir+"/rootd.log", nil, 0o644)
			os.Chown(dir+"/rootd.log", nobody, nobody)
			return []string{"-s", dir + "/root.socket", "-l", dir + "/rootd.log"}
		}, "owned by uid 65534"},
		{"socket directory owned by nobody", func(dir string) []string {
			os.Mkdir(dir+"/pmcd", 0o755)
			os.Chown(dir+"/pmcd", nobody, nobody)
			return []string{"-s", dir + "/pmcd/root.socket"}
		}, "not root's alone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			// A rootd that accepts the path runs until killed: 20s says so.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], append(tc.setup(shortDir(t)), "--engines", "static")...)
			cmd.Env = append(os.Environ(), daemonEnv+"=1")
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("rootd: %v, want exit status 1", err)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
		})
	}
}

// rootd handles SIGPIPE and SIGHUP itself, but the agents it starts must
// get both at their default disposition (an ignored signal would survive
// exec), and must not inherit NOTIFY_SOCKET, which is rootd's alone.
func TestAgentsInheritNoSignalStateNorNotifySocket(t *testing.T) {
	d := start(t, io.Discard, []string{"NOTIFY_SOCKET=@rootd-test-absent-notify"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.ProcessStart(ctx, "sigcheck", []string{"/bin/sh", "-c", "grep ^SigIgn: /proc/self/status; env"}, true)
	if err != nil {
		t.Fatal(err)
	}
	p.Stdin.Close()
	out, err := io.ReadAll(p.Stdout)
	p.Stdout.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ignored uint64
	for _, line := range strings.Split(string(out), "\n") {
		if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			fmt.Sscanf(strings.TrimSpace(hex), "%x", &ignored)
		}
		if strings.HasPrefix(line, "NOTIFY_SOCKET=") {
			t.Errorf("agent inherited %s", line)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGPIPE, syscall.SIGHUP} {
		if ignored&(1<<(sig-1)) != 0 {
			t.Errorf("agent starts with %v ignored (SigIgn %x)", sig, ignored)
		}
	}
	if !strings.Contains(string(out), "PATH=") {
		t.Errorf("agent output incomplete:\n%s", out)
	}
	d.stop(t)
}

// The daemons the tests start read no host configuration: --config
// /dev/null is added unless the test gives its own --config, never twice.
func TestWithTestConfig(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--config /dev/null"},
		{[]string{"-s", "x", "--engines", "static"}, "--config /dev/null -s x --engines static"},
		{[]string{"--config", "my.conf", "-s", "x"}, "--config my.conf -s x"},
		{[]string{"-s", "x", "--config=my.conf"}, "-s x --config=my.conf"},
		{[]string{"-config", "my.conf"}, "-config my.conf"},
	} {
		if got := strings.Join(withTestConfig(tc.args), " "); got != tc.want {
			t.Errorf("withTestConfig(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
