package wire

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// The codec sits on every request's path: decoding the request and encoding
// the reply into a buffer the session reuses must not allocate.

func benchRequest(b *testing.B, name string) []byte {
	b.Helper()
	req, err := AppendContainer(nil, Container{Type: TypeCgroupNameReq, Name: []byte(name)})
	if err != nil {
		b.Fatal(err)
	}
	return req
}

func BenchmarkDecodeContainer(b *testing.B) {
	for _, tc := range []struct{ label, name string }{
		{"name", "web-frontend-1"},
		{"id", strings.Repeat("0123456789abcdef", 4)},
	} {
		req := benchRequest(b, tc.name)
		b.Run(tc.label, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := DecodeContainer(req)
				if err != nil || len(c.Name) != len(tc.name) {
					b.Fatalf("DecodeContainer = %d bytes, %v", len(c.Name), err)
				}
			}
		})
	}
}

func BenchmarkAppendContainerReply(b *testing.B) {
	for _, tc := range []struct {
		label string
		t     Type
		name  string
	}{
		{"processid", TypeProcessID, ""},
		{"cgroupname", TypeCgroupName, "docker/" + strings.Repeat("0123456789abcdef", 4)},
		{"hostname", TypeHostname, "web-frontend-1"},
	} {
		name := []byte(tc.name)
		buf := make([]byte, 0, MaxPDUSize)
		b.Run(tc.label, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, err := AppendContainer(buf[:0], Container{Type: tc.t, PID: 4242, Name: name})
				if err != nil || len(out) != ContainerFixed+len(name) {
					b.Fatalf("AppendContainer = %d bytes, %v", len(out), err)
				}
			}
		})
	}
}

// BenchmarkReadPDU frames requests from a buffered stream, as the server's
// session loop does: one header parse and two copies out of the reader.
func BenchmarkReadPDU(b *testing.B) {
	req := benchRequest(b, strings.Repeat("0123456789abcdef", 4))
	const batch = 1024
	stream := bytes.Repeat(req, batch)
	src := bytes.NewReader(stream)
	in := bufio.NewReaderSize(src, MaxPDUSize)
	buf := make([]byte, MaxPDUSize)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == batch {
			src.Reset(stream)
			in.Reset(src)
			i = 0
		}
		h, pdu, err := ReadPDU(in, buf)
		if err != nil || h.Type != TypeCgroupNameReq || len(pdu) != len(req) {
			b.Fatalf("ReadPDU = %v, %d bytes, %v", h.Type, len(pdu), err)
		}
		i++
	}
}

func BenchmarkParseHeader(b *testing.B) {
	req := benchRequest(b, "web")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTripCodec is the codec's whole share of one request on the
// server: frame and decode the request, encode the reply.
func BenchmarkRoundTripCodec(b *testing.B) {
	req := benchRequest(b, "web-frontend-1")
	answer := []byte("docker/" + strings.Repeat("0123456789abcdef", 4))
	reply := make([]byte, 0, MaxPDUSize)
	buf := make([]byte, MaxPDUSize)
	r := bytes.NewReader(req)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(req)
		h, pdu, err := ReadPDU(r, buf)
		if err != nil {
			b.Fatal(err)
		}
		c, err := DecodeContainer(pdu)
		if err != nil {
			b.Fatal(err)
		}
		rt, _ := h.Type.Reply()
		if _, err := AppendContainer(reply[:0], Container{Type: rt, PID: c.PID, Name: answer}); err != nil {
			b.Fatal(err)
		}
	}
}
