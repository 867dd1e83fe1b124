package wire

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes through framing and every decoder: none
// may panic, and whatever decodes must re-encode to the same bytes.
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
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := make([]byte, MaxPDUSize)
		h, pdu, err := ReadPDU(bytes.NewReader(data), buf)
		if err != nil {
			return
		}
		if int(h.Length) != len(pdu) {
			t.Fatalf("framed %d bytes for length %d", len(pdu), h.Length)
		}
		if c, err := DecodeContainer(pdu); err == nil {
			// Trailing NULs are wire form, not name: re-encoding drops them,
			// so compare with the PDU less its NULs, lengths adjusted.
			re, err := AppendContainer(nil, c)
			want := slices.Clone(pdu[:ContainerFixed+len(c.Name)])
			order.PutUint32(want[4:], uint32(len(want)))
			order.PutUint32(want[20:], uint32(len(c.Name)))
			if bytes.IndexByte(c.Name, 0) >= 0 {
				t.Fatalf("decoded name %q holds a NUL", c.Name)
			}
			if err != nil || !bytes.Equal(re, want) && h.Version == Version {
				t.Fatalf("container round trip: %x -> %x (%v)", pdu, re, err)
			}
		}
		if s, err := DecodeStart(pdu); err == nil {
			if len(s.Label) >= MaxLabelLen || len(s.Args) >= MaxPathLen {
				t.Fatalf("start decoded out-of-range lengths %d/%d", len(s.Label), len(s.Args))
			}
		}
		if _, err := DecodeStop(pdu); err == nil && len(pdu) != StopSize {
			t.Fatalf("stop decoded from %d bytes", len(pdu))
		}
		_, _ = DecodeInfo(pdu)
	})
}

// FuzzSplitArgs checks that splitting never panics and that whatever pmcd
// could have joined splits back to the same words.
func FuzzSplitArgs(f *testing.F) {
	for _, s := range []string{`/bin/pmda -d 60`, `/bin/sh "say \"hi\" now"`, `"a b"c`, `a\\"b`, "x \t", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := SplitArgs(s)
		if err != nil {
			return
		}
		if argv[0] == "" {
			t.Fatalf("empty program from %q", s)
		}
		again, err := SplitArgs(JoinArgs(argv))
		if err != nil || !slices.Equal(again, argv) {
			t.Fatalf("%q: split %q, rejoined %q, resplit %q (%v)", s, argv, JoinArgs(argv), again, err)
		}
		if strings.Contains(JoinArgs(argv), "\x00") != strings.Contains(s, "\x00") {
			t.Fatalf("NUL appeared or vanished")
		}
	})
}
