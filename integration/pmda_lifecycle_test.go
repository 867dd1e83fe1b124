//go:build integration

package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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

	"github.com/rootd-project/rootd/pmda"
)

// pipedRootd is rootd --pmda with the test in pmcd's place on its pipes.
type pipedRootd struct {
	cmd    *exec.Cmd
	in     io.WriteCloser // rootd's standard input
	out    io.ReadCloser  // rootd's standard output
	r      *bufio.Reader
	socket string
	log    string
	done   chan error
}

func startPipedRootd(t *testing.T, socket string, args ...string) *pipedRootd {
	t.Helper()
	dir := t.TempDir()
	p := &pipedRootd{socket: socket, log: filepath.Join(dir, "root.log"), done: make(chan error, 1)}
	p.cmd = exec.Command(bins.rootd, noHostConfig(append([]string{"--pmda", "-s", socket, "-l", p.log, "--log-level", "debug"}, args...))...)
	p.cmd.Env = append(os.Environ(), mixedEnv()...)
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if p.out, err = p.cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	p.r = bufio.NewReader(p.out)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("root.log:\n%s", b)
		}
	})
	return p
}

func (p *pipedRootd) read(t *testing.T, within time.Duration) []byte {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, _, err := pmda.ReadPDU(p.r, nil)
		ch <- res{append([]byte(nil), b...), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading rootd's PDU: %v", r.err)
		}
		return r.b
	case <-time.After(within):
		t.Fatalf("no PDU from rootd within %s", within)
	}
	return nil
}

// handshake plays pmcd's part: read the agent's CREDS, answer with pmcd's.
// It returns how long the agent took to speak.
func (p *pipedRootd) handshake(t *testing.T, start time.Time) time.Duration {
	t.Helper()
	creds := p.read(t, 3*time.Second) // pmcd's limit
	took := time.Since(start)
	if typ := binary.BigEndian.Uint32(creds[4:]); pmda.Type(typ) != pmda.TypeCreds {
		t.Fatalf("first PDU is %s, want CREDS", pmda.Type(typ))
	}
	// pmcd starts the next agent through the socket right after this.
	if c, err := net.Dial("unix", p.socket); err != nil {
		t.Errorf("root socket not answering when the handshake arrived: %v", err)
	} else {
		c.Close()
	}
	if _, err := p.in.Write(pmda.AppendCreds(nil, 0)); err != nil {
		t.Fatal(err)
	}
	return took
}

func (p *pipedRootd) request(t *testing.T, req []byte) []byte {
	t.Helper()
	if _, err := p.in.Write(req); err != nil {
		t.Fatal(err)
	}
	return p.read(t, 5*time.Second)
}

func (p *pipedRootd) waitExit(t *testing.T, within time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("rootd still running %s after pmcd left", within)
	}
	return p.cmd.ProcessState
}

func fetchReq(pmids ...uint32) []byte {
	b := make([]byte, 28+4*len(pmids))
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	binary.BigEndian.PutUint32(b[4:], uint32(pmda.TypeFetch))
	binary.BigEndian.PutUint32(b[24:], uint32(len(pmids)))
	for i, id := range pmids {
		binary.BigEndian.PutUint32(b[28+4*i:], id)
	}
	return b
}

func descReq(pmid uint32) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b, 16)
	binary.BigEndian.PutUint32(b[4:], uint32(pmda.TypeDescReq))
	binary.BigEndian.PutUint32(b[12:], pmid)
	return b
}

// resultNumval returns the numval of the first metric of a RESULT PDU.
func resultNumval(t *testing.T, b []byte) int32 {
	t.Helper()
	if pmda.Type(binary.BigEndian.Uint32(b[4:])) != pmda.TypeResult {
		t.Fatalf("reply is %s, want RESULT", pmda.Type(binary.BigEndian.Uint32(b[4:])))
	}
	return int32(binary.BigEndian.Uint32(b[28:]))
}

// staticFile writes n running containers, all with the test's own PID (so
// that their cgroup is real), for the static engine.
func staticFile(t *testing.T, n int) string {
	t.Helper()
	type ctr struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
		PID   int      `json:"pid"`
	}
	cs := make([]ctr, n)
	for i := range cs {
		sum := sha256.Sum256([]byte(fmt.Sprintf("pmda-static-%d", i)))
		cs[i] = ctr{ID: hex.EncodeToString(sum[:]), Names: []string{fmt.Sprintf("pmda-static-%d", i)}, PID: os.Getpid()}
	}
	b, _ := json.Marshal(cs)
	path := filepath.Join(t.TempDir(), "containers.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPMDALifecycle plays pmcd on rootd's pipes.
func TestPMDALifecycle(t *testing.T) {
	containersEngine := pmda.PMID(1, 0, 0)

	t.Run("handshake before the index, socket first", func(t *testing.T) {
		// A Docker daemon that accepts and never answers: the first List
		// hangs (up to the resolver's 5 s refresh timeout).
		dir := t.TempDir()
		hang, err := net.Listen("unix", filepath.Join(dir, "hung.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer hang.Close()
		go func() {
			for {
				c, err := hang.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		sock := filepath.Join(dir, "pmcd", "root.socket")
		start := time.Now()
		p := startPipedRootd(t, sock, "--engines", "docker", "--docker-host", "unix://"+hang.Addr().String())
		took := p.handshake(t, start)
		t.Logf("handshake %s after exec (index not built)", took.Round(time.Millisecond))
		// Until the index exists: no instances, no values, but an answer.
		t0 := time.Now()
		if n := resultNumval(t, p.request(t, fetchReq(containersEngine))); n != 0 {
			t.Errorf("numval %d before the index, want 0", n)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("FETCH took %s while an engine hangs", d)
		}
		p.in.Close()
		if st := p.waitExit(t, 10*time.Second); !st.Success() {
			t.Errorf("exit: %v", st)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left after pmcd closed the pipe: %v", err)
		}
	})

	t.Run("pmcd closes the pipe", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "pmcd", "root.socket")
		p := startPipedRootd(t, sock, "--engines", "static", "--static-file", staticFile(t, 3))
		p.handshake(t, time.Now())
		if n := resultNumval(t, p.request(t, fetchReq(containersEngine))); n != 3 && n != 0 {
			t.Errorf("numval %d, want 3 (or 0 before the index)", n)
		}
		start := time.Now()
		p.in.Close()
		st := p.waitExit(t, 5*time.Second)
		t.Logf("exited %s after EOF: %v", time.Since(start).Round(time.Millisecond), st)
		if !st.Success() {
			t.Errorf("exit: %v", st)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left: %v", err)
		}
	})

	t.Run("write after pmcd has gone", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "pmcd", "root.socket")
		p := startPipedRootd(t, sock, "--engines", "static")
		p.handshake(t, time.Now())
		// pmcd's end of rootd's stdout goes away; the request is still
		// read, and the reply hits a broken pipe.
		p.out.Close()
		p.in.Write(descReq(containersEngine))
		st := p.waitExit(t, 5*time.Second)
		ws := st.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			t.Fatalf("rootd killed by %v", ws.Signal())
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left: %v", err)
		}
		log, _ := os.ReadFile(p.log)
		if !strings.Contains(string(log), "broken pipe") {
			t.Errorf("log does not mention the broken pipe:\n%s", log)
		}
		p.in.Close()
	})

	t.Run("another service owns the socket", func(t *testing.T) {
		other := startRootd(t, mixedEnv(), "--engines", "static")
		p := startPipedRootd(t, other.socket, "--engines", "static", "--static-file", staticFile(t, 2))
		p.handshake(t, time.Now())
		eventually(t, 10*time.Second, "both containers", func() (bool, string) {
			n := resultNumval(t, p.request(t, fetchReq(containersEngine)))
			return n == 2, fmt.Sprint(n)
		})
		p.in.Close()
		if st := p.waitExit(t, 5*time.Second); !st.Success() {
			t.Errorf("exit: %v", st)
		}
		log, _ := os.ReadFile(p.log)
		if !strings.Contains(string(log), "NOT serving the root socket") {
			t.Errorf("log does not say it does not own the socket:\n%s", log)
		}
		// The owner is untouched.
		c := other.client(t)
		if _, err := c.ProcessID(ctxT(t, 5*time.Second), "nothing-here"); err == nil {
			t.Error("lookup of nothing succeeded")
		}
	})
}

// TestPMDAScale measures pminfo -f containers through the real pmcd at
// 10, 100 and 1000 containers (static engine) and the handshake time.
func TestPMDAScale(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newPMCDStack(t, "--engines", "static", "--static-file", staticFile(t, n))
			s.start(t)
			eventually(t, 20*time.Second, "all containers listed", func() (bool, string) {
				out, _ := s.pminfo("-f", "containers.engine")
				return strings.Count(out, `value "static"`) == n, ""
			})
			const runs = 10
			var total, best time.Duration
			var out string
			for i := 0; i < runs; i++ {
				start := time.Now()
				out = s.mustPminfo(t, "-f", "containers")
				d := time.Since(start)
				total += d
				if best == 0 || d < best {
					best = d
				}
			}
			if got := strings.Count(out, `value "static"`); got != n {
				t.Fatalf("%d instances, want %d", got, n)
			}
			// pminfo -f pmcd.hostname: the same process without our agent,
			// to tell our share from pminfo's own start-up.
			var base time.Duration
			for i := 0; i < runs; i++ {
				start := time.Now()
				s.mustPminfo(t, "-f", "pmcd.hostname")
				base += time.Since(start)
			}
			t.Logf("%d containers: pminfo -f containers mean %s best %s (pminfo -f pmcd.hostname mean %s); %d bytes of output",
				n, (total / runs).Round(100*time.Microsecond), best.Round(100*time.Microsecond), (base / runs).Round(100*time.Microsecond), len(out))
			log, _ := os.ReadFile(s.rootLog)
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, "pmcd handshake done") {
					t.Log(line)
				}
			}
		})
	}
}
