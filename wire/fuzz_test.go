package wire

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes through framing and every decoder: none
// may panic, a stream frames into PDUs exactly as their headers say, and
// whatever decodes must re-encode to the same bytes (less what the encoder
// normalises: trailing NULs of a name, label bytes past its length, the
// STOPPMDA padding word and an older version number).
func FuzzDecode(f *testing.F) {
	seeds := [][]byte{
		ints(0x9000, 24, 0, 2, 7, 0),
		cat(ints(0x9001, 28, 0, 2, 0, 4), []byte("web1")),
		cat(ints(0x9001, 29, 0, 2, 0, 5), []byte("web1\x00")),
		ints(0x9003, 24, 0, 2, 99, 0),
		cat(ints(0x9007, 107, 0, 2, 0, 0, 0, 2, 3, 3), label64("pmd"), []byte("a b")),
		ints(0x9009, 32, 0, 2, -1, 0, 0, 0),
		ints(0x9001, 24, 0, 2, 0, -1),
		ints(0x9001, 1<<30, 0, 2),
		{0x01, 0x90},
		// Replies, an older version, and several PDUs to one stream.
		cat(ints(0x9006, 35, 0, 1, 42, 11), []byte("docker/abcd")),
		cat(ints(0x9008, 104, 0, 2, 1234, 5, 6, 1, 3, 0), label64("pmd")),
		ints(0x900a, 32, 0, 2, 1234, 9, 1, 0),
		cat(ints(0x9003, 28, 0, 2, 0, 4), []byte("web1"), ints(0x9005, 27, 0, 2, 0, 3), []byte("db\x00"), ints(0x9009, 32, 0, 2, 0, 0, 0, 0)),
		cat(ints(0x9007, 104+9, 0, 2, 0, 0, 0, 1, 3, 9), label64("pmd\x00junk"), []byte("/bin/true")),
		// The view extension: requests, reply chunks, hostile forms.
		ints(0x72640001, 24, 0, 2, 0, 0),
		cat(ints(0x72640003, 29, 0, 2, 0, 5), []byte("web1\x00")),
		ints(0x72640003, 24, 0, 2, 77, 0),
		cat(ints(0x72640003, 30, 0, 2, 0, 6), []byte("web\x00x\x00")),
		ints(0x72640005, 24, 0, 2, 0, 0),
		cat(ints(0x72640002, 33, 0, 2, 0, 0, 5), []byte(`{"ver`), ints(0x72640002, 36, 0, 2, 1, 1, 8), []byte(`sion":1}`)),
		ints(0x72640004, 28, -12399, 2, 0, 1, 0),
		ints(0x72640002, 28, 0, 2, 0, 0, 0),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := make([]byte, MaxPDUSize)
		r := bytes.NewReader(data)
		for n := 0; n < 64; n++ {
			before := r.Len()
			h, pdu, err := ReadPDU(r, buf)
			if err != nil {
				if ph, perr := ParseHeader(data[len(data)-before:]); perr == nil && before >= int(ph.Length) {
					t.Fatalf("ReadPDU failed (%v) on a whole frame %+v", err, ph)
				}
				return
			}
			if int(h.Length) != len(pdu) || before-r.Len() != len(pdu) {
				t.Fatalf("framed %d bytes, consumed %d, for length %d", len(pdu), before-r.Len(), h.Length)
			}
			checkDecoders(t, h, pdu)
		}
	})
}

// checkDecoders runs every decoder over one framed PDU.
func checkDecoders(t *testing.T, h Header, pdu []byte) {
	t.Helper()
	// The encoders write the current version; compare against that.
	want := func(n int) []byte {
		w := slices.Clone(pdu[:n])
		order.PutUint32(w[12:], Version)
		return w
	}
	decoded := 0
	if c, err := DecodeContainer(pdu); err == nil {
		decoded++
		// Trailing NULs are wire form, not name: re-encoding drops them,
		// so compare with the PDU less its NULs, lengths adjusted.
		re, err := AppendContainer(nil, c)
		w := want(ContainerFixed + len(c.Name))
		order.PutUint32(w[4:], uint32(len(w)))
		order.PutUint32(w[20:], uint32(len(c.Name)))
		if bytes.IndexByte(c.Name, 0) >= 0 {
			t.Fatalf("decoded name %q holds a NUL", c.Name)
		}
		if err != nil || !bytes.Equal(re, w) {
			t.Fatalf("container round trip: %x -> %x (%v)", pdu, re, err)
		}
	}
	if s, err := DecodeStart(pdu); err == nil {
		decoded++
		if len(s.Label) >= MaxLabelLen || len(s.Args) >= MaxPathLen {
			t.Fatalf("start decoded out-of-range lengths %d/%d", len(s.Label), len(s.Args))
		}
		if s.Type == TypeStartReq && (len(s.Label) == 0 || len(s.Args) == 0 || s.IPCType != IPCPipe && s.IPCType != IPCSocket) {
			t.Fatalf("start request decoded without label, args or a known ipctype: %+v", s)
		}
		re, err := AppendStart(nil, s)
		w := want(len(pdu))
		clear(w[40+len(s.Label) : StartFixed]) // the label field is zero-padded
		if err != nil || !bytes.Equal(re, w) {
			t.Fatalf("start round trip: %x -> %x (%v)", pdu, re, err)
		}
	}
	if s, err := DecodeStop(pdu); err == nil {
		decoded++
		if len(pdu) != StopSize {
			t.Fatalf("stop decoded from %d bytes", len(pdu))
		}
		re, err := AppendStop(nil, s)
		w := want(StopSize)
		clear(w[28:]) // the unused fourth word is sent as zero
		if err != nil || !bytes.Equal(re, w) {
			t.Fatalf("stop round trip: %x -> %x (%v)", pdu, re, err)
		}
	}
	if in, err := DecodeInfo(pdu); err == nil {
		decoded++
		w := want(InfoSize)
		clear(w[20:]) // padding after the features word is sent as zero
		if re := AppendInfo(nil, in); !bytes.Equal(re, w) {
			t.Fatalf("info round trip: %x -> %x", pdu, re)
		}
	}
	if r, err := DecodeViewRequest(pdu); err == nil {
		decoded++
		if r.Type == TypeDescribeReq && (len(r.Name) == 0) == (r.PID <= 0) {
			t.Fatalf("describe request with neither or both of name and pid: %+v", r)
		}
		re, err := AppendViewRequest(nil, r)
		w := want(ViewRequestFixed + len(r.Name))
		order.PutUint32(w[4:], uint32(len(w)))
		order.PutUint32(w[20:], uint32(len(r.Name)))
		if bytes.IndexByte(r.Name, 0) >= 0 {
			t.Fatalf("decoded name %q holds a NUL", r.Name)
		}
		if err != nil || !bytes.Equal(re, w) {
			t.Fatalf("view request round trip: %x -> %x (%v)", pdu, re, err)
		}
	}
	if v, err := DecodeView(pdu); err == nil {
		decoded++
		if len(v.Data) > MaxViewChunk || !v.Last && len(v.Data) == 0 {
			t.Fatalf("view chunk decoded with %d bytes, last %v", len(v.Data), v.Last)
		}
		re, err := AppendView(nil, v)
		if err != nil || !bytes.Equal(re, want(len(pdu))) {
			t.Fatalf("view round trip: %x -> %x (%v)", pdu, re, err)
		}
	}
	if decoded > 1 {
		t.Fatalf("%v PDU decoded as %d different kinds", h.Type, decoded)
	}
}

// FuzzSplitArgs checks that splitting never panics, that whatever splits
// joins back to a string that splits the same way, and, the other way
// round, that any argv pmcd could join (words given as the input cut at
// 0x1e) splits back to the same words. The one argv pmcd's joining cannot
// carry is one with a quoted word (a word with a space or tab) ending in a
// backslash: the backslash escapes the closing quote, and the string pmcd
// sends means something else (as it does to PCP's own pmdaroot). No agent
// path or argument looks like that; such argvs are only split, not checked.
func FuzzSplitArgs(f *testing.F) {
	for _, s := range []string{`/bin/pmda -d 60`, `/bin/sh "say \"hi\" now"`, `"a b"c`, `a\\"b`, "x \t", "",
		"/bin/pmda\x1e-d\x1e60", "/bin/sh\x1esay \"hi\"\x1e\x1e", "a b\\\x1ec", "\x1ex", `"a \"`, "p  q ", "p\t\"q\x00"} {
		f.Add(s)
	}
	// unjoinable reports whether pmcd's joining cannot carry argv.
	unjoinable := func(argv []string) bool {
		return slices.ContainsFunc(argv, func(w string) bool {
			return strings.ContainsAny(w, " \t") && strings.HasSuffix(w, `\`)
		})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if argv, err := SplitArgs(s); err == nil {
			if argv[0] == "" {
				t.Fatalf("empty program from %q", s)
			}
			if unjoinable(argv) {
				// A tab is not a separator ("a\t\\" is one word), so
				// SplitArgs can return such a word, which no join carries.
				return
			}
			again, err := SplitArgs(JoinArgs(argv))
			if err != nil || !slices.Equal(again, argv) {
				t.Fatalf("%q: split %q, rejoined %q, resplit %q (%v)", s, argv, JoinArgs(argv), again, err)
			}
			if strings.Contains(JoinArgs(argv), "\x00") != strings.Contains(s, "\x00") {
				t.Fatalf("NUL appeared or vanished")
			}
		}

		words := strings.Split(s, "\x1e")
		if words[0] == "" {
			return
		}
		joined := JoinArgs(words)
		got, err := SplitArgs(joined)
		switch {
		case err == nil && slices.Equal(got, words):
		case unjoinable(words):
		default:
			t.Fatalf("%q joined as %q split to %q (%v)", words, joined, got, err)
		}
	})
}

// FuzzViewReply plays a server's reply stream to a view request as the
// client reads it: framing, chunk decoding, assembly and the document
// decoder. Nothing may panic, assembly must stop at the first bad chunk or
// the last one, never hold more than MaxViewDocument, and a document that
// decodes must encode and decode again to the same value.
func FuzzViewReply(f *testing.F) {
	seeds := [][]byte{
		cat(ints(0x72640002, 41, 0, 2, 0, 1, 13), []byte(`{"version":1}`)),
		cat(ints(0x72640002, 33, 0, 2, 0, 0, 5), []byte(`{"ver`), ints(0x72640002, 36, 0, 2, 1, 1, 8), []byte(`sion":1}`)),
		cat(ints(0x72640004, 28+71, -131, 2, 0, 1, 71), []byte(`{"version":1,"candidates":[{"engine":"e","id":"a1"}],"error":"2 match"}`)),
		cat(ints(0x72640006, 28+45, 0, 2, 0, 1, 45), []byte(`{"version":1,"status":{"engines":[{"name":"x"}]}}`)[:45]),
		ints(0x72640004, 28, -12399, 2, 0, 1, 0),
		ints(0x72640002, 28, 0, 2, 0, 0, 0),
		cat(ints(0x72640002, 30, 0, 2, 0, 0, 2), []byte("{}"), ints(0x72640002, 30, 0, 2, 0, 1, 2), []byte("{}")),
	}
	for _, s := range seeds {
		f.Add(uint8(0), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		want := []Type{TypeList, TypeDescribe, TypeStatus}[int(which)%3]
		buf := make([]byte, MaxPDUSize)
		r := bytes.NewReader(data)
		a := NewViewAssembler(want)
		for {
			_, pdu, err := ReadPDU(r, buf)
			if err != nil {
				return
			}
			v, err := DecodeView(pdu)
			if err != nil {
				return
			}
			done, err := a.Add(v)
			if len(a.Document()) > MaxViewDocument {
				t.Fatalf("assembled %d bytes", len(a.Document()))
			}
			if err != nil {
				return
			}
			if done {
				break
			}
		}
		d, err := DecodeViewDocument(want, a.Status(), a.Document())
		if err != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", d, err)
		}
		again, err := DecodeViewDocument(want, a.Status(), b)
		if err != nil {
			t.Fatalf("re-encoded document %s does not decode: %v", b, err)
		}
		if normalize(again) != normalize(d) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v", d, again)
		}
	})
}

// normalize maps what JSON cannot tell apart (an empty map or slice and a
// missing one; time zones of equal instants) onto one form.
func normalize(d ViewDocument) string {
	b, _ := json.Marshal(d)
	var v any
	json.Unmarshal(b, &v)
	out, _ := json.Marshal(v)
	return string(out)
}
