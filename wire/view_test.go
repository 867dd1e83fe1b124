package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The golden PDUs spell out the layouts in docs/protocol.md.
func TestGoldenViewEncoding(t *testing.T) {
	esrch := -int32(syscall.ESRCH)
	tests := []struct {
		name   string
		encode func() ([]byte, error)
		want   []byte
	}{
		{"list request", func() ([]byte, error) { return AppendViewRequest(nil, ViewRequest{Type: TypeListReq}) },
			ints(0x72640001, 24, 0, 2, 0, 0)},
		{"status request", func() ([]byte, error) { return AppendViewRequest(nil, ViewRequest{Type: TypeStatusReq}) },
			ints(0x72640005, 24, 0, 2, 0, 0)},
		{"describe by name", func() ([]byte, error) {
			return AppendViewRequest(nil, ViewRequest{Type: TypeDescribeReq, Name: []byte("docker:web1")})
		}, cat(ints(0x72640003, 35, 0, 2, 0, 11), []byte("docker:web1"))},
		{"describe by pid", func() ([]byte, error) {
			return AppendViewRequest(nil, ViewRequest{Type: TypeDescribeReq, PID: 4242})
		}, ints(0x72640003, 24, 0, 2, 4242, 0)},
		{"list reply, one chunk", func() ([]byte, error) {
			return AppendView(nil, View{Type: TypeList, Last: true, Data: []byte(`{"version":1}`)})
		}, cat(ints(0x72640002, 41, 0, 2, 0, 1, 13), []byte(`{"version":1}`))},
		{"list reply, first of several", func() ([]byte, error) {
			return AppendView(nil, View{Type: TypeList, Seq: 0, Data: []byte(`{"ver`)})
		}, cat(ints(0x72640002, 33, 0, 2, 0, 0, 5), []byte(`{"ver`))},
		{"describe not running, third chunk", func() ([]byte, error) {
			return AppendView(nil, View{Type: TypeDescribe, Status: esrch, Seq: 2, Last: true, Data: []byte("}")})
		}, cat(ints(0x72640004, 29, -3, 2, 2, 1, 1), []byte("}"))},
		{"status reply, bare error", func() ([]byte, error) {
			return AppendView(nil, View{Type: TypeStatus, Status: -int32(syscall.EOPNOTSUPP), Last: true})
		}, ints(0x72640006, 28, -95, 2, 0, 1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoded\n got %x\nwant %x", got, tc.want)
			}
		})
	}
}

func TestDecodeViewRequest(t *testing.T) {
	tests := []struct {
		name     string
		pdu      []byte
		wantName string
		wantPID  int32
		ok       bool
	}{
		{"list", ints(0x72640001, 24, 0, 2, 0, 0), "", 0, true},
		{"status", ints(0x72640005, 24, 0, 2, 0, 0), "", 0, true},
		{"describe name", cat(ints(0x72640003, 28, 0, 2, 0, 4), []byte("web1")), "web1", 0, true},
		{"describe name with its NUL", cat(ints(0x72640003, 29, 0, 2, 0, 5), []byte("web1\x00")), "web1", 0, true},
		{"describe name, trailing NULs", cat(ints(0x72640003, 31, 0, 2, 0, 7), []byte("web1\x00\x00\x00")), "web1", 0, true},
		{"describe pid", ints(0x72640003, 24, 0, 2, 77, 0), "", 77, true},
		{"describe pid, name only NULs", cat(ints(0x72640003, 26, 0, 2, 77, 2), []byte("\x00\x00")), "", 77, true},
		{"older version", ints(0x72640001, 24, 0, 1, 0, 0), "", 0, true},

		{"byte after NUL", cat(ints(0x72640003, 30, 0, 2, 0, 6), []byte("web\x00x\x00")), "", 0, false},
		{"NUL inside", cat(ints(0x72640003, 28, 0, 2, 0, 4), []byte("w\x00b1")), "", 0, false},
		{"describe nothing", ints(0x72640003, 24, 0, 2, 0, 0), "", 0, false},
		{"describe only NULs, no pid", cat(ints(0x72640003, 25, 0, 2, 0, 1), []byte("\x00")), "", 0, false},
		{"describe negative pid", ints(0x72640003, 24, 0, 2, -1, 0), "", 0, false},
		{"describe name and pid", cat(ints(0x72640003, 25, 0, 2, 9, 1), []byte("a")), "", 0, false},
		{"list with a name", cat(ints(0x72640001, 25, 0, 2, 0, 1), []byte("a")), "", 0, false},
		{"list with a NUL name", cat(ints(0x72640001, 25, 0, 2, 0, 1), []byte("\x00")), "", 0, false},
		{"list with a pid", ints(0x72640001, 24, 0, 2, 5, 0), "", 0, false},
		{"status with a status", ints(0x72640005, 24, -1, 2, 0, 0), "", 0, false},
		{"header only", ints(0x72640001, 16, 0, 2), "", 0, false},
		{"negative namelen", ints(0x72640003, 24, 0, 2, 0, -4), "", 0, false},
		{"namelen 4096", ints(0x72640003, 24, 0, 2, 0, 4096), "", 0, false},
		{"namelen past end", cat(ints(0x72640003, 26, 0, 2, 0, 3), []byte("ab")), "", 0, false},
		{"length disagrees", cat(ints(0x72640003, 27, 0, 2, 0, 2), []byte("ab")), "", 0, false},
		{"reply type", ints(0x72640002, 24, 0, 2, 0, 0), "", 0, false},
		{"container type", cat(ints(0x9003, 28, 0, 2, 0, 4), []byte("web1")), "", 0, false},
		{"unknown type in the block", ints(0x72640007, 24, 0, 2, 0, 0), "", 0, false},
		{"version 3", ints(0x72640001, 24, 0, 3, 0, 0), "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeViewRequest(tc.pdu)
			if !tc.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %+v, %v; want ErrMalformed", r, err)
				}
				return
			}
			if err != nil || string(r.Name) != tc.wantName || r.PID != tc.wantPID {
				t.Fatalf("got %+v (%q), %v", r, r.Name, err)
			}
		})
	}
}

func TestAppendViewRequestRefuses(t *testing.T) {
	for _, r := range []ViewRequest{
		{Type: TypeListReq, PID: 1},
		{Type: TypeStatusReq, Name: []byte("x")},
		{Type: TypeDescribeReq},
		{Type: TypeDescribeReq, PID: 1, Name: []byte("x")},
		{Type: TypeDescribeReq, Name: bytes.Repeat([]byte("x"), MaxPathLen)},
		{Type: TypeList},
		{Type: TypeProcessIDReq, Name: []byte("x")},
	} {
		if b, err := AppendViewRequest(nil, r); err == nil {
			t.Errorf("%v %+v encoded as %x", r.Type, r, b)
		}
	}
}

func TestDecodeViewRejects(t *testing.T) {
	tests := []struct {
		name string
		pdu  []byte
	}{
		{"request type", ints(0x72640001, 28, 0, 2, 0, 1, 0)},
		{"below fixed", ints(0x72640002, 24, 0, 2, 0, 1)},
		{"negative seq", ints(0x72640002, 28, 0, 2, -1, 1, 0)},
		{"unknown flag", ints(0x72640002, 28, 0, 2, 0, 3, 0)},
		{"datalen past end", cat(ints(0x72640002, 30, 0, 2, 0, 1, 3), []byte("ab"))},
		{"datalen short", cat(ints(0x72640002, 30, 0, 2, 0, 1, 1), []byte("ab"))},
		{"negative datalen", ints(0x72640002, 28, 0, 2, 0, 1, -1)},
		{"empty chunk not last", ints(0x72640002, 28, 0, 2, 0, 0, 0)},
		{"container reply", ints(0x9004, 24, 0, 2, 1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := DecodeView(tc.pdu); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %+v, %v; want ErrMalformed", v, err)
			}
		})
	}
}

// chunksOf frames a document as a sender does.
func chunksOf(t *testing.T, typ Type, status int32, doc []byte) [][]byte {
	t.Helper()
	var out [][]byte
	err := ViewChunks(typ, status, doc, func(v View) error {
		b, err := AppendView(nil, v)
		if len(b) > MaxPDUSize {
			t.Fatalf("chunk of %d bytes exceeds the PDU limit", len(b))
		}
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assemble receives chunks as a client does.
func assemble(typ Type, pdus [][]byte) (int32, []byte, error) {
	a := NewViewAssembler(typ)
	for i, p := range pdus {
		v, err := DecodeView(p)
		if err != nil {
			return 0, nil, err
		}
		done, err := a.Add(v)
		if err != nil {
			return 0, nil, err
		}
		if done != (i == len(pdus)-1) {
			return 0, nil, fmt.Errorf("done=%v at chunk %d of %d", done, i, len(pdus))
		}
	}
	return a.Status(), a.Document(), nil
}

// TestListingOf10000Containers is the case chunking exists for: the
// document is far beyond one PDU, every chunk stays within it, and the
// receiver gets back exactly what was sent.
func TestListingOf10000Containers(t *testing.T) {
	doc := ViewDocument{Version: ViewVersion}
	for i := range 10000 {
		doc.Containers = append(doc.Containers, ContainerInfo{
			Engine: "docker", ID: fmt.Sprintf("%064x", i), Names: []string{fmt.Sprintf("web-%d", i)},
			State: "running", PID: 1000 + i, Labels: map[string]string{"app": "web", "tier": fmt.Sprint(i % 3)},
			Cgroup: fmt.Sprintf("system.slice/docker-%064x.scope", i),
		})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	pdus := chunksOf(t, TypeList, 0, b)
	if want := (len(b) + MaxViewChunk - 1) / MaxViewChunk; len(pdus) != want {
		t.Fatalf("%d chunks for %d bytes, want %d", len(pdus), len(b), want)
	}
	status, got, err := assemble(TypeList, pdus)
	if err != nil || status != 0 || !bytes.Equal(got, b) {
		t.Fatalf("reassembled %d of %d bytes, status %d: %v", len(got), len(b), status, err)
	}
	d, err := DecodeViewDocument(TypeList, 0, got)
	if err != nil || len(d.Containers) != 10000 || d.Containers[9999].PID != 10999 {
		t.Fatalf("decoded %d containers: %v", len(d.Containers), err)
	}
}

func TestViewChunkBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, MaxViewChunk - 1, MaxViewChunk, MaxViewChunk + 1, 3 * MaxViewChunk} {
		doc := bytes.Repeat([]byte("x"), n)
		pdus := chunksOf(t, TypeStatus, 0, doc)
		if want := max(1, (n+MaxViewChunk-1)/MaxViewChunk); len(pdus) != want {
			t.Errorf("%d bytes: %d chunks, want %d", n, len(pdus), want)
		}
		if _, got, err := assemble(TypeStatus, pdus); err != nil || !bytes.Equal(got, doc) {
			t.Errorf("%d bytes: got %d back, %v", n, len(got), err)
		}
	}
	if err := ViewChunks(TypeList, 0, make([]byte, MaxViewDocument+1), func(View) error { return nil }); err == nil {
		t.Error("oversize document chunked")
	}
}

func TestViewAssemblerRejects(t *testing.T) {
	chunk := func(typ Type, status, seq int32, last bool, data string) View {
		return View{Type: typ, Status: status, Seq: seq, Last: last, Data: []byte(data)}
	}
	tests := []struct {
		name   string
		chunks []View
	}{
		{"wrong type", []View{chunk(TypeStatus, 0, 0, true, "{}")}},
		{"starts at 1", []View{chunk(TypeList, 0, 1, true, "{}")}},
		{"skips one", []View{chunk(TypeList, 0, 0, false, "{"), chunk(TypeList, 0, 2, true, "}")}},
		{"repeats one", []View{chunk(TypeList, 0, 0, false, "{"), chunk(TypeList, 0, 0, true, "}")}},
		{"status changes", []View{chunk(TypeList, 0, 0, false, "{"), chunk(TypeList, -5, 1, true, "}")}},
		{"after the last", []View{chunk(TypeList, 0, 0, true, "{}"), chunk(TypeList, 0, 1, true, "")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewViewAssembler(TypeList)
			var err error
			for _, c := range tc.chunks {
				if _, err = a.Add(c); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("oversize", func(t *testing.T) {
		a := NewViewAssembler(TypeList)
		big := make([]byte, MaxViewChunk)
		var err error
		for seq := int32(0); err == nil; seq++ {
			if int(seq) > MaxViewDocument/MaxViewChunk+1 {
				t.Fatal("no limit")
			}
			_, err = a.Add(View{Type: TypeList, Seq: seq, Data: big})
		}
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestDecodeViewDocument(t *testing.T) {
	esrch, enotuniq, einval := -int32(syscall.ESRCH), -int32(syscall.ENOTUNIQ), -int32(syscall.EINVAL)
	web := `{"engine":"docker","id":"abc","names":["web"],"state":"running","pid":7}`
	tests := []struct {
		name   string
		typ    Type
		status int32
		doc    string
		ok     bool
		check  func(ViewDocument) bool
	}{
		{"list", TypeList, 0, `{"version":1,"containers":[` + web + `]}`, true,
			func(d ViewDocument) bool { return len(d.Containers) == 1 && d.Containers[0].PID == 7 }},
		{"empty list", TypeList, 0, `{"version":1}`, true, func(d ViewDocument) bool { return d.Containers == nil }},
		{"unknown fields ignored", TypeList, 0, `{"version":1,"future":[1,2],"containers":[{"engine":"e","id":"i","state":"s","x":1}]}`, true, nil},
		{"describe", TypeDescribe, 0, `{"version":1,"container":` + web + `}`, true,
			func(d ViewDocument) bool { return d.Container.Names[0] == "web" }},
		{"describe not running", TypeDescribe, esrch, `{"version":1,"container":` + web + `,"error":"stopped"}`, true,
			func(d ViewDocument) bool { return d.Container != nil && d.Error == "stopped" }},
		{"describe ambiguous", TypeDescribe, enotuniq, `{"version":1,"candidates":[` + web + `,` + web + `],"error":"ambiguous"}`, true,
			func(d ViewDocument) bool { return len(d.Candidates) == 2 }},
		{"bare error", TypeDescribe, StatusNoContainer, ``, true, nil},
		{"error text", TypeList, einval, `{"version":1,"error":"bad"}`, true, nil},
		{"status", TypeStatus, 0, `{"version":1,"status":{"version":"1.0","started":"2026-01-02T03:04:05Z","ready":true,"containers":1,"engines":[{"name":"docker","health":"available","containers":1}]}}`, true,
			func(d ViewDocument) bool {
				return d.Status.Ready && d.Status.Started.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			}},

		{"empty ok document", TypeList, 0, ``, false, nil},
		{"not JSON", TypeList, 0, `{"version":1`, false, nil},
		{"trailing garbage", TypeList, 0, `{"version":1} x`, false, nil},
		{"version 2", TypeList, 0, `{"version":2}`, false, nil},
		{"no version", TypeList, 0, `{}`, false, nil},
		{"container without id", TypeList, 0, `{"version":1,"containers":[{"engine":"docker","state":"running"}]}`, false, nil},
		{"negative pid", TypeDescribe, 0, `{"version":1,"container":{"engine":"e","id":"i","state":"s","pid":-1}}`, false, nil},
		{"describe without container", TypeDescribe, 0, `{"version":1}`, false, nil},
		{"candidates without ENOTUNIQ", TypeDescribe, 0, `{"version":1,"container":` + web + `,"candidates":[` + web + `]}`, false, nil},
		{"containers in describe", TypeDescribe, 0, `{"version":1,"container":` + web + `,"containers":[` + web + `]}`, false, nil},
		{"container with ENOTUNIQ", TypeDescribe, enotuniq, `{"version":1,"container":` + web + `}`, false, nil},
		{"status in list", TypeList, 0, `{"version":1,"status":{"version":"x","started":"2026-01-02T03:04:05Z","ready":true,"containers":0,"engines":[]}}`, false, nil},
		{"status without status", TypeStatus, 0, `{"version":1}`, false, nil},
		{"engine without name", TypeStatus, 0, `{"version":1,"status":{"version":"x","started":"2026-01-02T03:04:05Z","ready":true,"containers":0,"engines":[{"health":"available"}]}}`, false, nil},
		{"error with status 0", TypeList, 0, `{"version":1,"error":"x"}`, false, nil},
		{"wrong JSON type", TypeList, 0, `{"version":1,"containers":{}}`, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeViewDocument(tc.typ, tc.status, []byte(tc.doc))
			if !tc.ok {
				if !errors.Is(err, ErrViewDocument) {
					t.Fatalf("got %+v, %v; want ErrViewDocument", d, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(d) {
				t.Fatalf("decoded %+v", d)
			}
		})
	}
}

// A healthy engine's JSON has no last_error: omitempty never omits a
// struct, so a zero time.Time printed as "0001-01-01T00:00:00Z".
func TestEngineStatusOmitsZeroTimes(t *testing.T) {
	b, err := json.Marshal(EngineStatus{Name: "docker", Health: "available", Containers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"last_error"`, `"last_refresh"`, "0001-01-01"} {
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("healthy engine's JSON has %s: %s", key, b)
		}
	}
	when := time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC)
	b, _ = json.Marshal(EngineStatus{Name: "lxc", Health: "failing", Error: "x", LastError: when})
	if !bytes.Contains(b, []byte(`"last_error":"2026-12-04T07:00:00Z"`)) {
		t.Errorf("failing engine's JSON lacks last_error: %s", b)
	}
}
