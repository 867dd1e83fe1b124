package rootd

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/wire"
)

// peerAddrPrefix starts the abstract address a test client binds to play
// the uid that follows it: "@rootd-test-uid-1000-3" is uid 1000.
const peerAddrPrefix = "@rootd-test-uid-"

// uidFromAddr is the peerHook of the tests that play non-root peers: a
// client bound to peerAddrPrefix+UID+"-..." is that uid, any other keeps
// its real credentials.
func uidFromAddr(conn *net.UnixConn, p Peer) Peer {
	a, ok := conn.RemoteAddr().(*net.UnixAddr)
	if !ok {
		return p
	}
	rest, ok := strings.CutPrefix(a.Name, peerAddrPrefix)
	if !ok {
		return p
	}
	uid, err := strconv.ParseUint(rest[:strings.IndexByte(rest, '-')], 10, 32)
	if err != nil {
		panic(err)
	}
	p.UID, p.GID, p.Groups = uint32(uid), uint32(uid), nil
	return p
}

var dialSeq int

// rawAs connects as uid (through uidFromAddr) and consumes INFO.
func (ts *testServer) rawAs(t *testing.T, uid uint32) *net.UnixConn {
	t.Helper()
	dialSeq++
	local := &net.UnixAddr{Name: fmt.Sprintf("%s%d-%d-%d", peerAddrPrefix, uid, time.Now().UnixNano(), dialSeq), Net: "unix"}
	c, err := net.DialUnix("unix", local, &net.UnixAddr{Name: ts.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	info := make([]byte, wire.InfoSize)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, info); err != nil {
		t.Fatal(err)
	}
	return c
}

func viewReq(t *testing.T, typ wire.Type, name string) []byte {
	t.Helper()
	r := wire.ViewRequest{Type: typ}
	if name != "" {
		r.Name = []byte(name)
	}
	b, err := wire.AppendViewRequest(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeDoc(t *testing.T, r rawReply) wire.ViewDocument {
	t.Helper()
	var doc wire.ViewDocument
	if err := json.Unmarshal(r.doc, &doc); err != nil {
		t.Fatalf("document %s: %v", r.doc, err)
	}
	return doc
}

// TestViewLabelsByPeer: through the session code, a peer other than root
// gets only the Kubernetes identity labels of a container (and
// labels_redacted), in LIST, DESCRIBE and an ambiguous DESCRIBE's
// candidates; root gets every label.
func TestViewLabelsByPeer(t *testing.T) {
	ts := startViewServer(t, newFakeViewer(viewWeb, viewDB, viewOld), func(c *Config) {
		c.peerHook = uidFromAddr
		c.Access = Access{UIDs: map[uint32]bool{1000: true}}
	})
	public := map[string]string{engine.LabelPodName: "web-0"}
	for _, tc := range []struct {
		name     string
		uid      uint32
		want     map[string]string
		redacted bool
	}{
		{"root sees every label", 0, viewWeb.Labels, false},
		{"uid 1000 sees the Kubernetes identity only", 1000, public, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := ts.rawAs(t, tc.uid)
			check := func(what string, got wire.ContainerInfo) {
				t.Helper()
				if !maps.Equal(got.Labels, tc.want) || got.LabelsRedacted != tc.redacted {
					t.Errorf("%s: labels %v redacted %v, want %v redacted %v", what, got.Labels, got.LabelsRedacted, tc.want, tc.redacted)
				}
			}
			doc := decodeDoc(t, rawView(t, conn, viewReq(t, wire.TypeListReq, ""), wire.TypeList))
			if len(doc.Containers) != 3 {
				t.Fatalf("LIST: %+v", doc)
			}
			check("LIST", doc.Containers[0])
			if c := doc.Containers[1]; c.Labels != nil || c.LabelsRedacted {
				t.Errorf("LIST: container without labels: %+v", c)
			}
			doc = decodeDoc(t, rawView(t, conn, viewReq(t, wire.TypeDescribeReq, "web"), wire.TypeDescribe))
			if doc.Container == nil {
				t.Fatalf("DESCRIBE web: %+v", doc)
			}
			check("DESCRIBE", *doc.Container)
			r := rawView(t, conn, viewReq(t, wire.TypeDescribeReq, "aaa"), wire.TypeDescribe)
			doc = decodeDoc(t, r)
			if r.status != -int32(syscall.ENOTUNIQ) || len(doc.Candidates) != 2 {
				t.Fatalf("DESCRIBE aaa: status %d, %+v", r.status, doc)
			}
			check("DESCRIBE candidate", doc.Candidates[0])
		})
	}
}

// TestViewSlotKeptForRoot: peers that send LIST and never read its reply
// (a listing larger than the socket buffer) cannot starve root's view
// requests: a uid other than root holds at most one slot at a time, and
// one slot is root's alone. Another user's request is still served while
// one user hogs, and that user's further requests get EBUSY at their
// deadline.
func TestViewSlotKeptForRoot(t *testing.T) {
	var listed []resolver.Listed
	for i := range 10000 {
		listed = append(listed, resolver.Listed{Container: engine.Container{
			Engine: "containerd", ID: fmt.Sprintf("%064x", i), Names: []string{fmt.Sprintf("c%d", i)},
			State: engine.StateRunning, PID: 1000 + i, Namespace: "k8s.io",
		}, Cgroup: fmt.Sprintf("kubepods/%064x", i)})
	}
	for _, tc := range []struct {
		name string
		hogs []uint32 // the uid of each connection that never reads
	}{
		{"one user, four connections", []uint32{1000, 1000, 1000, 1000}},
		{"four users", []uint32{1001, 1002, 1003, 1004}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startViewServer(t, newFakeViewer(listed...), func(c *Config) {
				c.peerHook = uidFromAddr
				c.Access = Access{UIDs: map[uint32]bool{1000: true, 1001: true, 1002: true, 1003: true, 1004: true, 1005: true}}
				c.RequestTimeout = 500 * time.Millisecond
				c.WriteTimeout = time.Minute // the hogs hold what they got for the whole test
			})
			for _, uid := range tc.hogs {
				if _, err := ts.rawAs(t, uid).Write(viewReq(t, wire.TypeListReq, "")); err != nil {
					t.Fatal(err)
				}
			}
			for deadline := time.Now().Add(5 * time.Second); ts.srv.viewSlotsInUse() == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no LIST took a slot")
				}
			}
			time.Sleep(200 * time.Millisecond) // the other hogs take theirs, or wait

			got, err := ts.client(t).List(ctx5(t))
			if err != nil || len(got) != len(listed) {
				t.Fatalf("root's LIST: %d containers, %v", len(got), err)
			}
			if _, err := ts.client(t).Status(ctx5(t)); err != nil {
				t.Fatalf("root's STATUS: %v", err)
			}
			if tc.hogs[0] == tc.hogs[1] {
				// The hogging user waits its turn and gives up at the deadline;
				// another user is served.
				r := rawView(t, ts.rawAs(t, tc.hogs[0]), viewReq(t, wire.TypeStatusReq, ""), wire.TypeStatus)
				if r.status != -int32(syscall.EBUSY) {
					t.Errorf("STATUS from the hogging uid: status %d, want EBUSY", r.status)
				}
				r = rawView(t, ts.rawAs(t, 1005), viewReq(t, wire.TypeStatusReq, ""), wire.TypeStatus)
				if r.status != 0 {
					t.Errorf("STATUS from another uid: status %d %s", r.status, r.doc)
				}
			}
		})
	}
}
