package rootd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/wire"
)

// The tests re-execute their own binary as a separate client process (a
// different pid, and for some tests uid 65534, "nobody") to play a second
// client or an unprivileged attacker against a real server.

const helperEnv = "ROOTD_TEST_HELPER"

func TestMain(m *testing.M) {
	if cmd := os.Getenv(helperEnv); cmd != "" {
		os.Exit(runHelper(cmd))
	}
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

const nobody = 65534

var (
	helperOnce sync.Once
	helperDir  string
	helperPath string
	helperErr  error
)

// helperBinary is a copy of the test binary that uid 65534 can execute
// (go test builds into a directory only root can enter).
func helperBinary(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			helperErr = err
			return
		}
		helperDir, helperErr = os.MkdirTemp("", "rootd-helper-")
		if helperErr != nil {
			return
		}
		os.Chmod(helperDir, 0o755)
		helperPath = filepath.Join(helperDir, "rootd.test")
		b, err := os.ReadFile(self)
		if err != nil {
			helperErr = err
			return
		}
		helperErr = os.WriteFile(helperPath, b, 0o755)
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

// helperReq is what a helper process is asked to do.
type helperReq struct {
	Socket string
	// start: start Argv Count times; signal/wait: act on PID.
	Op    string
	Argv  []string
	Pipe  bool
	Count int
	PID   int
	// race: swap Link between Good and a script of the helper's own.
	Link, Good, Evil string
}

// helperOut is what it reports.
type helperOut struct {
	Started  int      // starts that succeeded
	PIDs     []int    // their pids
	Errs     []string // distinct errors
	EPERM    int      // starts or signals refused with EPERM
	Other    int      // other failures
	TermErr  string   // signal op: SIGTERM's result ("" = success)
	KillErr  string   // signal op: SIGKILL's result
	WaitPID  int      // wait op: what a reap returned
	HelperID int      // the helper's own pid
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, syscall.EPERM) {
		return "EPERM"
	}
	return err.Error()
}

// runHelper is the helper process's main.
func runHelper(op string) int {
	var req helperReq
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv+"_REQ")), &req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, req.Socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		return 2
	}
	defer c.Close()
	out := helperOut{HelperID: os.Getpid()}
	seen := map[string]bool{}
	note := func(err error) {
		if errors.Is(err, syscall.EPERM) {
			out.EPERM++
		} else {
			out.Other++
		}
		if s := errString(err); !seen[s] {
			seen[s] = true
			out.Errs = append(out.Errs, s)
		}
	}
	start := func() {
		p, err := c.ProcessStart(ctx, "helper", req.Argv, req.Pipe)
		if err != nil {
			note(err)
			return
		}
		out.Started++
		out.PIDs = append(out.PIDs, p.PID)
		if p.Stdin != nil {
			p.Stdin.Close()
			p.Stdout.Close()
		}
	}
	switch op {
	case "start":
		for range max(req.Count, 1) {
			start()
		}
	case "race":
		// The attacker owns Link's directory: it flips Link between an
		// allowed program and its own script while asking for Link.
		if err := os.WriteFile(req.Evil, []byte("#!/bin/sh\ntouch \"${0%/*}/ran-as-$(id -u)-$$\"\n"), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tmp := req.Link + ".tmp"
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				target := req.Good
				if i%2 == 1 {
					target = req.Evil
				}
				os.Remove(tmp)
				os.Symlink(target, tmp)
				os.Rename(tmp, req.Link)
			}
		}()
		req.Argv = []string{req.Link}
		for range req.Count {
			start()
		}
		close(stop)
		wg.Wait()
	case "signal":
		out.TermErr = errString(c.ProcessSignalTerm(ctx, req.PID))
		out.KillErr = errString(c.ProcessTerminate(ctx, req.PID))
		fallthrough
	case "wait":
		pid, _, err := c.ProcessWait(ctx)
		if err != nil {
			note(err)
		}
		out.WaitPID = pid
	default:
		fmt.Fprintln(os.Stderr, "unknown op", op)
		return 2
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// runHelperAs runs one helper operation as uid (and gid) id, or as root
// when id is 0, and returns its report.
func runHelperAs(t *testing.T, id int, req helperReq) helperOut {
	t.Helper()
	b, _ := json.Marshal(req)
	cmd := exec.Command(helperBinary(t))
	cmd.Env = append(os.Environ(), helperEnv+"="+req.Op, helperEnv+"_REQ="+string(b))
	cmd.Dir = "/"
	if id != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id), Gid: uint32(id), Groups: []uint32{}}}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", req.Op, err, stderr.String())
	}
	var out helperOut
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("helper %s output %q: %v", req.Op, stdout, err)
	}
	return out
}

// openToAll lets uid 65534 reach the test server's socket.
func (ts *testServer) openToAll(t *testing.T) {
	t.Helper()
	dir := filepath.Dir(ts.path)
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(ts.path, 0o666); err != nil {
		t.Fatal(err)
	}
}

// selfOwner is the Owner of connections this test process makes.
func selfOwner(t *testing.T) Owner {
	t.Helper()
	o := ownerOf(Peer{PID: int32(os.Getpid())})
	if o.Conn != 0 {
		t.Fatal("cannot read own start time")
	}
	return o
}

// logCapture records log records.
type logCapture struct {
	mu   sync.Mutex
	recs []string
}

func (l *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		l.mu.Lock()
		l.recs = append(l.recs, string(b))
		l.mu.Unlock()
		return len(b), nil
	}), nil))
}

func (l *logCapture) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recs, "")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

var _ io.Writer = writerFunc(nil)

// isStatus reports whether err is the reply status want.
func isStatus(err error, want int32) bool {
	var se wire.StatusError
	return errors.As(err, &se) && int32(se) == want
}
