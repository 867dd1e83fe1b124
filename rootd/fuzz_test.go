package rootd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/rootd"
	"github.com/rootd-project/rootd/wire"
)

// fuzzResolver answers at once from a fixed table, with every kind of
// answer and error a real resolver gives.
type fuzzResolver struct{}

func (fuzzResolver) lookup(name string) (pid int, answer string, err error) {
	switch name {
	case "web1":
		return 101, "docker/aaaa", nil
	case "db":
		return 202, "system.slice/docker-bbbb.scope", nil
	case "longhost":
		return 5, strings.Repeat("h", wire.MaxPathLen), nil // too long to send
	case "ab":
		return 0, "", &engine.AmbiguousError{Query: "ab", Candidates: []engine.Container{{Engine: "docker", ID: "ab1"}, {Engine: "podman", ID: "ab2"}}}
	case "stopped":
		return 0, "", fmt.Errorf("stopped: %w", engine.ErrNotRunning)
	case "down":
		return 0, "", fmt.Errorf("docker: %w", engine.ErrUnavailable)
	case "slow":
		return 0, "", context.DeadlineExceeded
	case "eio":
		return 0, "", syscall.EIO
	}
	return 0, "", fmt.Errorf("%q: %w", name, engine.ErrNotFound)
}

func (r fuzzResolver) PID(_ context.Context, name string) (int, error) {
	pid, _, err := r.lookup(name)
	return pid, err
}

func (r fuzzResolver) CgroupPath(_ context.Context, name string) (int, string, error) {
	return r.lookup(name)
}

func (r fuzzResolver) Hostname(_ context.Context, name string) (int, string, error) {
	pid, answer, err := r.lookup(name)
	return pid, "host-" + answer, err
}

// fuzzViewer is the index the fuzzed view requests see: every kind of
// answer, at once.
type fuzzViewer struct{}

var fuzzListed = []resolver.Listed{
	{Container: engine.Container{Engine: "docker", ID: "ab1", Names: []string{"web1"}, State: engine.StateRunning, PID: 101,
		Labels: map[string]string{"secret": "x", engine.LabelPodName: "p"}}, Cgroup: "docker/ab1"},
	{Container: engine.Container{Engine: "podman", ID: "ab2", Names: []string{"stopped"}, State: engine.StateStopped}},
}

func (fuzzViewer) Listing() (uint64, []resolver.Listed) { return 1, fuzzListed }

func (fuzzViewer) Describe(_ context.Context, q string) (resolver.Described, error) {
	switch q {
	case "web1":
		return resolver.Described{Listed: fuzzListed[0], Hostname: "h"}, nil
	case "stopped":
		return resolver.Described{Listed: fuzzListed[1]}, engine.ErrNotRunning
	}
	_, _, err := fuzzResolver{}.lookup(q)
	return resolver.Described{}, err
}

func (fuzzViewer) DescribePID(_ context.Context, pid int) (resolver.Described, error) {
	if pid == 101 {
		return resolver.Described{Listed: fuzzListed[0]}, nil
	}
	return resolver.Described{}, engine.ErrNotFound
}

func (fuzzViewer) Status() []resolver.EngineStatus {
	return []resolver.EngineStatus{{Name: "docker", Health: "available", Containers: 1, States: map[engine.State]int{engine.StateRunning: 1}}}
}

func (fuzzViewer) Containers() []engine.Container {
	return []engine.Container{fuzzListed[0].Container, fuzzListed[1].Container}
}

func (fuzzViewer) Ready() <-chan struct{} { return nil }

func viewPDU(t wire.Type, pid int32, name string) []byte {
	b, err := wire.AppendViewRequest(nil, wire.ViewRequest{Type: t, PID: pid, Name: []byte(name)})
	if err != nil {
		panic(err)
	}
	return b
}

// sessionPDU builds one request for the seed corpus.
func sessionPDU(t wire.Type, name string) []byte {
	b, err := wire.AppendContainer(nil, wire.Container{Type: t, Name: []byte(name)})
	if err != nil {
		panic(err)
	}
	return b
}

func startPDU(label, args string, ipc int32) []byte {
	b, err := wire.AppendStart(nil, wire.Start{Type: wire.TypeStartReq, IPCType: ipc, Label: []byte(label), Args: []byte(args)})
	if err != nil {
		panic(err)
	}
	return b
}

func stopPDU(pid, force int32) []byte {
	b, _ := wire.AppendStop(nil, wire.Stop{Type: wire.TypeStopReq, PID: pid, Force: force})
	return b
}

// FuzzSession runs a whole client session against a real Server over a
// real unix socket (peer credentials and SCM_RIGHTS need one), with the
// fuzz input as every byte the client sends. The server must not panic or
// hang, must greet with INFO and then answer every request, in order, with
// one reply of the matching type until the input ends or stops being a
// request it can frame, and must then end the session.
//
// Agents can be started, but only /usr/bin/true: the Supervisor's
// allow-list is the boundary, and fuzzing it must not run anything else.
func FuzzSession(f *testing.F) {
	seeds := [][]byte{
		sessionPDU(wire.TypeProcessIDReq, "web1"),
		bytes.Join([][]byte{
			sessionPDU(wire.TypeProcessIDReq, "web1"),
			sessionPDU(wire.TypeCgroupNameReq, "db"),
			sessionPDU(wire.TypeHostnameReq, "ab"),
			sessionPDU(wire.TypeHostnameReq, "nosuch"),
			sessionPDU(wire.TypeCgroupNameReq, "longhost"),
			sessionPDU(wire.TypeProcessIDReq, "stopped"),
			sessionPDU(wire.TypeProcessIDReq, "down"),
			sessionPDU(wire.TypeHostnameReq, "slow"),
			sessionPDU(wire.TypeHostnameReq, "eio"),
		}, nil),
		// By-PID hostname: an empty name and a PID.
		func() []byte {
			b, _ := wire.AppendContainer(nil, wire.Container{Type: wire.TypeHostnameReq, PID: 1})
			return b
		}(),
		append(sessionPDU(wire.TypeProcessIDReq, "web1"), 0, 0, 0), // name with its NULs
		bytes.Join([][]byte{
			startPDU("pmda", "/usr/bin/true -d 1", wire.IPCPipe),
			startPDU("pmda", `/bin/true "a b" c`, wire.IPCSocket),
			stopPDU(0, 0),
			stopPDU(-1, 1),
			stopPDU(1, 0),
		}, nil),
		startPDU("pmda", "/bin/sh -c true", wire.IPCPipe), // not allowed
		startPDU("x", `"unterminated`, wire.IPCPipe),
		sessionPDU(wire.TypeProcessIDReq, "web1")[:20],                                               // cut short
		append(sessionPDU(wire.TypeProcessID, "web1"), sessionPDU(wire.TypeProcessIDReq, "web1")...), // a reply type
		{0, 0x90, 0, 0, 0xff, 0xff, 0, 0},
		// The view requests, good and hostile, mixed with lookups.
		bytes.Join([][]byte{
			viewPDU(wire.TypeListReq, 0, ""),
			viewPDU(wire.TypeStatusReq, 0, ""),
			viewPDU(wire.TypeDescribeReq, 0, "web1"),
			viewPDU(wire.TypeDescribeReq, 0, "ab"),
			viewPDU(wire.TypeDescribeReq, 0, "stopped"),
			viewPDU(wire.TypeDescribeReq, 0, "slow"),
			viewPDU(wire.TypeDescribeReq, 101, ""),
			viewPDU(wire.TypeDescribeReq, 7, ""),
			sessionPDU(wire.TypeProcessIDReq, "web1"),
		}, nil),
		append(viewPDU(wire.TypeDescribeReq, 0, "web1"), 0, 'x'), // namelen short of the bytes sent
		func() []byte {
			b := viewPDU(wire.TypeDescribeReq, 0, "web\x00x")
			return append(b, viewPDU(wire.TypeListReq, 0, "")...)
		}(),
		viewPDU(wire.TypeListReq, 0, "")[:20],
		append(viewPDU(wire.TypeStatusReq, 0, "")[:16:16], 0, 0, 0, 0), // header says 24, 20 sent
	}
	for _, s := range seeds {
		f.Add(s)
	}

	// The fuzzed client connects as an unprivileged user: root peers may
	// start any program, and generated STARTPMDA requests must reach only
	// the one --allow-exec names.
	const fuzzUID = 65534
	if os.Geteuid() != 0 {
		f.Skip("connecting as another user needs root")
	}
	dir := f.TempDir()
	sock := filepath.Join(dir, "root.socket")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(dir), dir} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(sock, 0o666)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	procs := rootd.NewSupervisor(rootd.SupervisorConfig{Log: log, Stderr: io.Discard, AllowedPrograms: []string{"/usr/bin/true"}})
	srv := rootd.NewServer(rootd.Config{
		Log: log, Resolver: fuzzResolver{}, View: fuzzViewer{}, Processes: procs,
		Access:         rootd.Access{UIDs: map[uint32]bool{fuzzUID: true}},
		RequestTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: 2 * time.Second,
		HostnameOfPID: func(_ context.Context, pid int) (string, error) {
			if pid < 1 {
				return "", syscall.ESRCH
			}
			return fmt.Sprintf("pid%d", pid), nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	f.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			f.Errorf("Serve: %v", err)
		}
		for _, pid := range procs.Live() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		procs.Wait()
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := dialAsUID(fuzzUID, sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A session that neither answers nor ends within this is hung.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(data)
			if err == nil {
				err = c.CloseWrite()
			}
			wrote <- err
		}()

		var replies bytes.Buffer
		buf := make([]byte, 64<<10)
		oob := make([]byte, unix.CmsgSpace(4*4))
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			replies.Write(buf[:n])
			closeRights(t, oob[:oobn])
			if errors.Is(err, io.EOF) || n == 0 && oobn == 0 && err == nil {
				break
			}
			if err != nil {
				t.Fatalf("session hung or failed after %d reply bytes: %v", replies.Len(), err)
			}
		}
		if err := <-wrote; err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write: %v", err)
		}

		want := answerable(data)
		rbuf := make([]byte, wire.MaxPDUSize)
		h, pdu, err := wire.ReadPDU(&replies, rbuf)
		if err != nil {
			t.Fatalf("no INFO greeting: %v", err)
		}
		if _, err := wire.DecodeInfo(pdu); err != nil {
			t.Fatalf("greeting %v: %v", h.Type, err)
		}
		for i, req := range want {
			if req.IsViewRequest() {
				r, _ := req.Reply()
				a := wire.NewViewAssembler(r)
				for done := false; !done; {
					_, pdu, err := wire.ReadPDU(&replies, rbuf)
					if err != nil {
						t.Fatalf("reply %d of %d (to %v): %v", i+1, len(want), req, err)
					}
					v, err := wire.DecodeView(pdu)
					if err != nil {
						t.Fatalf("reply %d (to %v) does not decode: %v", i+1, req, err)
					}
					if done, err = a.Add(v); err != nil {
						t.Fatalf("reply %d (to %v): %v", i+1, req, err)
					}
				}
				if _, err := wire.DecodeViewDocument(r, a.Status(), a.Document()); err != nil {
					t.Fatalf("reply %d (to %v): %v", i+1, req, err)
				}
				continue
			}
			h, pdu, err := wire.ReadPDU(&replies, rbuf)
			if err != nil {
				t.Fatalf("reply %d of %d (to %v): %v", i+1, len(want), req, err)
			}
			if r, _ := req.Reply(); h.Type != r {
				t.Fatalf("reply %d is %v to %v", i+1, h.Type, req)
			}
			if !decodes(pdu) {
				t.Fatalf("reply %d (%v) does not decode: %x", i+1, h.Type, pdu)
			}
		}
		if replies.Len() > 0 {
			t.Fatalf("%d bytes beyond the %d replies expected", replies.Len(), len(want))
		}
		deadline := time.Now().Add(5 * time.Second)
		for srv.Clients() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("session still open after its client left")
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// answerable frames data as the server does and returns the types of the
// requests it must answer: every PDU until the first that cannot be framed
// or is not a request.
func answerable(data []byte) []wire.Type {
	var types []wire.Type
	r := bytes.NewReader(data)
	buf := make([]byte, wire.MaxPDUSize)
	for {
		h, _, err := wire.ReadPDU(r, buf)
		if err != nil {
			return types
		}
		switch h.Type {
		case wire.TypeHostnameReq, wire.TypeProcessIDReq, wire.TypeCgroupNameReq, wire.TypeStartReq, wire.TypeStopReq,
			wire.TypeListReq, wire.TypeDescribeReq, wire.TypeStatusReq:
			types = append(types, h.Type)
		default:
			return types
		}
	}
}

func decodes(pdu []byte) bool {
	_, err1 := wire.DecodeContainer(pdu)
	_, err2 := wire.DecodeStart(pdu)
	_, err3 := wire.DecodeStop(pdu)
	return err1 == nil || err2 == nil || err3 == nil
}

// closeRights closes any descriptors that arrived with a reply.
func closeRights(t *testing.T, oob []byte) {
	if len(oob) == 0 {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		t.Fatalf("control message: %v", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// dialAsUID connects to path with uid as the effective user of the
// connecting thread only (setresuid on a locked thread that then ends), so
// the server's SO_PEERCRED sees uid and the rest of the test stays root.
func dialAsUID(uid int, path string) (*net.UnixConn, error) {
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- result{nil, e}
			return
		}
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
