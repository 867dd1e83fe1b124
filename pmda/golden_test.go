package pmda

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
)

// golden reads testdata/golden/name: hex words, '#' comments.
func golden(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	var hx strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		line, _, _ = strings.Cut(line, "#")
		hx.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(hx.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(b) >= 4 && int(be.Uint32(b)) != len(b) {
		t.Fatalf("%s: header says %d bytes, file holds %d", name, be.Uint32(b), len(b))
	}
	return b
}

type fakeSource struct {
	gen  uint64
	list []resolver.Listed
}

func (f *fakeSource) Listing() (uint64, []resolver.Listed) { return f.gen, f.list }

// goldenSource holds the two containers the golden replies describe.
func goldenSource() *fakeSource {
	return &fakeSource{gen: 1, list: []resolver.Listed{
		{Container: engine.Container{Engine: "docker", ID: "aaaa", Names: []string{"/web"}, PID: 100, State: engine.StateRunning}, Cgroup: "docker/aaaa"},
		{Container: engine.Container{Engine: "podman", ID: "bbbbbb", Names: []string{"db"}, State: engine.StateStopped}},
	}}
}

func hexDump(b []byte) string {
	var s strings.Builder
	for i := 0; i < len(b); i += 4 {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(hex.EncodeToString(b[i:min(i+4, len(b))]))
	}
	return s.String()
}

// TestGoldenConversation plays every golden request, in this order, to one
// agent and compares each reply with its golden file.
func TestGoldenConversation(t *testing.T) {
	a := New(nil)
	a.SetSource(goldenSource())
	for _, name := range []string{
		"profile_all", "fetch", "desc", "desc_pid", "desc_unknown",
		"instance_all", "instance_name", "instance_inst", "instance_gone", "instance_indom",
		"text_unknown", "label_domain", "label_item", "attr", "endctx", "store", "pmns", "unknown",
		"fetch_profile", "fetch_profiled",
	} {
		t.Run(name, func(t *testing.T) {
			req := golden(t, name+".req.hex")
			h, err := ParseHeader(req, MaxRequest)
			if err != nil {
				t.Fatal(err)
			}
			got := a.Handle(h, req)
			replyFile := filepath.Join("testdata", "golden", name+".reply.hex")
			if _, err := os.Stat(replyFile); errors.Is(err, os.ErrNotExist) {
				if got != nil {
					t.Fatalf("replied %s, want no reply", hexDump(got))
				}
				return
			}
			want := golden(t, name+".reply.hex")
			if !bytes.Equal(got, want) {
				t.Fatalf("reply\n got %s\nwant %s", hexDump(got), hexDump(want))
			}
		})
	}
}

func TestGoldenEncoders(t *testing.T) {
	if got, want := AppendText(nil, PMID(1, 0, 2), "abc"), golden(t, "text.reply-abc.hex"); !bytes.Equal(got, want) {
		t.Errorf("AppendText\n got %s\nwant %s", hexDump(got), hexDump(want))
	}
	if got, want := AppendCreds(nil, FlagContainer), golden(t, "creds.agent.hex"); !bytes.Equal(got, want) {
		t.Errorf("AppendCreds\n got %s\nwant %s", hexDump(got), hexDump(want))
	}
	creds, err := DecodeCreds(golden(t, "creds.pmcd.hex"))
	if err != nil || len(creds) != 1 || creds[0] != (Cred{Type: 1, Version: 2}) {
		t.Errorf("DecodeCreds = %+v, %v", creds, err)
	}
}

// TestText checks both kinds of text for every metric and the indom.
func TestText(t *testing.T) {
	a := New(nil)
	for _, m := range Metrics {
		for _, kind := range []int32{TextOneLine, TextHelp} {
			b := a.text(m.Desc.PMID, TextPMID|kind)
			h, _ := ParseHeader(b, 1<<20)
			if h.Type != TypeText {
				t.Fatalf("%s: %s", m.Name, h.Type)
			}
			n := int(be.Uint32(b[16:]))
			want := m.OneLine
			if kind == TextHelp {
				want = m.Help
			}
			if got := string(b[20 : 20+n]); got != want || want == "" {
				t.Errorf("%s kind %d: %q", m.Name, kind, got)
			}
		}
	}
	b := a.text(ContainersInDom, TextInDom|TextHelp)
	if h, _ := ParseHeader(b, 1<<20); h.Type != TypeText || !strings.Contains(string(b), "instance name") {
		t.Errorf("indom help: %s", hexDump(b))
	}
}

// TestServe runs the handshake and a request over pipes, as pmcd would.
func TestServe(t *testing.T) {
	toAgent, fromPMCD := io.Pipe()
	fromAgent, toPMCD := io.Pipe()
	a := New(nil)
	a.SetSource(goldenSource())
	done := make(chan error, 1)
	go func() { done <- a.Serve(context.Background(), toAgent, toPMCD) }()
	r := bufio.NewReader(fromAgent)
	readReply := func() []byte {
		t.Helper()
		b, _, err := ReadPDU(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got, want := readReply(), golden(t, "creds.agent.hex"); !bytes.Equal(got, want) {
		t.Fatalf("first PDU %s, want %s", hexDump(got), hexDump(want))
	}
	fromPMCD.Write(golden(t, "creds.pmcd.hex"))
	// A request split in two writes is still one request.
	req := golden(t, "desc.req.hex")
	fromPMCD.Write(req[:5])
	fromPMCD.Write(req[5:])
	if got, want := readReply(), golden(t, "desc.reply.hex"); !bytes.Equal(got, want) {
		t.Fatalf("desc %s, want %s", hexDump(got), hexDump(want))
	}
	fromPMCD.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after pmcd closed the pipe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after EOF")
	}
}

func TestServeBadHandshake(t *testing.T) {
	a := New(nil)
	var out bytes.Buffer
	err := a.Serve(context.Background(), bytes.NewReader(golden(t, "desc.req.hex")), &out)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("err = %v, want ErrHandshake", err)
	}
	err = a.Serve(context.Background(), bytes.NewReader([]byte{0, 0, 0, 3, 0, 0}), &out)
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("short header: err = %v, want ErrHandshake", err)
	}
}

// TestNoSourceYet: before the index exists, the domain is empty and the
// metrics have no values, but everything answers.
func TestNoSourceYet(t *testing.T) {
	a := New(nil)
	b := a.fetch([]uint32{PMID(1, 0, 0)})
	want := []byte{0, 0, 0, 0x20, 0, 0, 0x70, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x40, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("fetch %s", hexDump(b))
	}
	b = a.instance(InstanceReq{InDom: ContainersInDom, Inst: InstNull})
	if !bytes.Equal(b, []byte{0, 0, 0, 0x14, 0, 0, 0x70, 0x07, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("instance %s", hexDump(b))
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
