package client

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/wire"
)

// fakeServer greets with features and answers the first request with
// reply, whatever it was; it records the request it got.
func fakeServer(t *testing.T, features int32, reply []byte) (path string, got <-chan []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	reqs := make(chan []byte, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.AcceptUnix()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(wire.AppendInfo(nil, wire.Info{Features: features}))
		_, pdu, err := wire.ReadPDU(c, make([]byte, wire.MaxPDUSize))
		if err != nil {
			close(reqs)
			return
		}
		reqs <- append([]byte(nil), pdu...)
		c.Write(reply)
		io.Copy(io.Discard, c) // until the client closes
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return path, reqs
}

func chunk(t wire.Type, status, seq int32, last bool, data string) []byte {
	b, err := wire.AppendView(nil, wire.View{Type: t, Status: status, Seq: seq, Last: last, Data: []byte(data)})
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) (out []byte) {
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestViewAgainstServerWithoutFeature(t *testing.T) {
	path, got := fakeServer(t, wire.AllFeatures, nil) // as PCP's pmdaroot greets
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Connect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, call := range map[string]func() error{
		"List":        func() error { _, err := c.List(ctx); return err },
		"Describe":    func() error { _, err := c.Describe(ctx, "web"); return err },
		"DescribePID": func() error { _, err := c.DescribePID(ctx, 1); return err },
		"Status":      func() error { _, err := c.Status(ctx); return err },
	} {
		if err := call(); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want errors.ErrUnsupported", name, err)
		}
	}
	c.Close()
	if req, ok := <-got; ok {
		t.Errorf("a request reached a server without the feature: %x", req)
	}
}

// TestViewRejectsBadReplies: whatever a server sends, the client returns
// an error saying what was wrong, never a partial answer. (A reply beyond
// wire.MaxViewDocument is TestViewAssemblerRejects' in wire: 64 MiB is
// too slow to send here under -race.)
func TestViewRejectsBadReplies(t *testing.T) {
	list := wire.TypeList
	hdr := make([]byte, wire.HeaderSize)
	binary.NativeEndian.PutUint32(hdr[0:], uint32(list))
	binary.NativeEndian.PutUint32(hdr[4:], 1<<20)
	binary.NativeEndian.PutUint32(hdr[12:], 2)
	tests := []struct {
		name  string
		reply []byte
		want  error
	}{
		{"wrong type", chunk(wire.TypeStatus, 0, 0, true, `{"version":1}`), wire.ErrMalformed},
		{"container reply", func() []byte {
			b, _ := wire.AppendContainer(nil, wire.Container{Type: wire.TypeProcessID, PID: 1})
			return b
		}(), wire.ErrMalformed},
		{"out of order", cat(chunk(list, 0, 0, false, `{"ver`), chunk(list, 0, 2, true, `sion":1}`)), wire.ErrMalformed},
		{"status changes", cat(chunk(list, 0, 0, false, `{"ver`), chunk(list, -22, 1, true, `sion":1}`)), wire.ErrMalformed},
		{"empty chunk not last", cat(chunk(list, 0, 0, true, "")[:wire.ViewFixed], chunk(list, 0, 1, true, "{}"))[0:wire.ViewFixed], wire.ErrMalformed},
		{"PDU over the size limit", hdr, wire.ErrMalformed},
		{"bad JSON", chunk(list, 0, 0, true, `{"version":1,`), wire.ErrViewDocument},
		{"unknown version", chunk(list, 0, 0, true, `{"version":2,"containers":[]}`), wire.ErrViewDocument},
		{"container without id", chunk(list, 0, 0, true, `{"version":1,"containers":[{"engine":"docker"}]}`), wire.ErrViewDocument},
		{"cut short", chunk(list, 0, 0, false, `{"ver`), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply := tc.reply
			if tc.name == "empty chunk not last" {
				reply = chunk(list, 0, 0, true, "")
				binary.NativeEndian.PutUint32(reply[20:], 0) // clear the last flag
			}
			path, _ := fakeServer(t, wire.AllFeatures|wire.FeatureView, reply)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Connect(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.want == io.ErrUnexpectedEOF {
				// The server sends part of a reply and then waits: the
				// client's deadline ends the wait.
				short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				ctx = short
				tc.want = context.DeadlineExceeded
			}
			got, err := c.List(ctx)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("List = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestViewErrorStatuses(t *testing.T) {
	desc := wire.TypeDescribe
	tests := []struct {
		name  string
		reply []byte
		check func(wire.ContainerInfo, error) bool
	}{
		{"not found", chunk(desc, wire.StatusNoContainer, 0, true, `{"version":1,"error":"\"x\": no such container"}`),
			func(_ wire.ContainerInfo, err error) bool { return errors.Is(err, ErrNoContainer) }},
		{"bare not found", chunk(desc, wire.StatusNoContainer, 0, true, ``),
			func(_ wire.ContainerInfo, err error) bool { return errors.Is(err, ErrNoContainer) }},
		{"not running, with the container", chunk(desc, -int32(syscall.ESRCH), 0, true,
			`{"version":1,"container":{"engine":"docker","id":"abc","state":"stopped"},"error":"stopped"}`),
			func(c wire.ContainerInfo, err error) bool { return errors.Is(err, syscall.ESRCH) && c.ID == "abc" }},
		{"ambiguous", chunk(desc, -int32(syscall.ENOTUNIQ), 0, true,
			`{"version":1,"candidates":[{"engine":"docker","id":"ab1","state":"running"},{"engine":"lxc","id":"ab2","state":"running"}],"error":"2 match"}`),
			func(_ wire.ContainerInfo, err error) bool {
				var amb *AmbiguousError
				return errors.Is(err, syscall.ENOTUNIQ) && errors.As(err, &amb) && amb.Name == "ab" && len(amb.Candidates) == 2
			}},
		{"not offered after all", chunk(desc, -int32(syscall.EOPNOTSUPP), 0, true, `{"version":1,"error":"no index"}`),
			func(_ wire.ContainerInfo, err error) bool { return errors.Is(err, errors.ErrUnsupported) }},
		{"invalid", chunk(desc, -int32(syscall.EINVAL), 0, true, `{"version":1,"error":"bad"}`),
			func(_ wire.ContainerInfo, err error) bool { return errors.Is(err, syscall.EINVAL) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, got := fakeServer(t, wire.AllFeatures|wire.FeatureView, tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := Connect(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			info, err := c.Describe(ctx, "ab")
			if !tc.check(info, err) {
				t.Fatalf("Describe = %+v, %v", info, err)
			}
			want, _ := wire.AppendViewRequest(nil, wire.ViewRequest{Type: wire.TypeDescribeReq, Name: []byte("ab")})
			if req := <-got; string(req) != string(want) {
				t.Fatalf("sent %x, want %x", req, want)
			}
		})
	}
}

// A PID outside 1..2^31-1 is refused before anything is sent: the wire
// carries an int32, and 4294967297 would otherwise ask about PID 1.
func TestHostNameByPIDRange(t *testing.T) {
	path, got := fakeServer(t, wire.AllFeatures, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Connect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{0, -1, 1 << 31, 1<<32 + 1} {
		if _, err := c.HostNameByPID(ctx, pid); err == nil {
			t.Errorf("HostNameByPID(%d) succeeded", pid)
		}
	}
	c.Close()
	if req, ok := <-got; ok {
		t.Errorf("a request was sent: % x", req)
	}
}
