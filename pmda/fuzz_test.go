package pmda

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzAgent feeds arbitrary bytes to the agent as pmcd's side of the pipe
// after the handshake. Whatever arrives, the agent must not panic, must
// never allocate from a length it was sent beyond MaxRequest, and every
// reply must be one well-formed PDU whose header length is its size.
// Seeds: testdata/fuzz/FuzzAgent (the golden requests, one per file).
func FuzzAgent(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New(discardLogger())
		a.SetSource(goldenSource())
		r := bufio.NewReader(bytes.NewReader(data))
		var buf []byte
		for {
			b, h, err := ReadPDU(r, buf)
			buf = b
			if err != nil {
				return
			}
			if h.Len != len(b) {
				t.Fatalf("ReadPDU returned %d bytes for length %d", len(b), h.Len)
			}
			reply := a.Handle(h, b)
			if reply == nil {
				continue
			}
			rh, err := ParseHeader(reply, 1<<30)
			if err != nil || rh.Len != len(reply) {
				t.Fatalf("bad reply to %s: %v %x", h.Type, err, reply)
			}
			if rh.Len%4 != 0 {
				t.Fatalf("reply to %s not padded: %d bytes", h.Type, rh.Len)
			}
		}
	})
}
