package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// ints lays out C ints in host order, as PCP's structures do, so the golden
// PDUs below read like the tables in docs/protocol.md.
func ints(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.NativeEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func label64(s string) []byte {
	b := make([]byte, 64)
	copy(b, s)
	return b
}

func TestGoldenEncoding(t *testing.T) {
	tests := []struct {
		name   string
		encode func() ([]byte, error)
		want   []byte
	}{
		{"info", func() ([]byte, error) { return AppendInfo(nil, Info{Features: AllFeatures}), nil },
			ints(0x9000, 24, 0, 2, 7, 0)},
		{"hostname request", func() ([]byte, error) {
			return AppendContainer(nil, Container{Type: TypeHostnameReq, Name: []byte("web1")})
		}, cat(ints(0x9001, 28, 0, 2, 0, 4), []byte("web1"))},
		{"hostname by pid", func() ([]byte, error) {
			return AppendContainer(nil, Container{Type: TypeHostnameReq, PID: 4242})
		}, ints(0x9001, 24, 0, 2, 4242, 0)},
		{"hostname reply", func() ([]byte, error) {
			return AppendContainer(nil, Container{Type: TypeHostname, PID: 77, Name: []byte("web1-host")})
		}, cat(ints(0x9002, 33, 0, 2, 77, 9), []byte("web1-host"))},
		{"processid reply", func() ([]byte, error) {
			return AppendContainer(nil, Container{Type: TypeProcessID, PID: 1234})
		}, ints(0x9004, 24, 0, 2, 1234, 0)},
		{"cgroupname request", func() ([]byte, error) {
			return AppendContainer(nil, Container{Type: TypeCgroupNameReq, Name: []byte("abc")})
		}, cat(ints(0x9005, 27, 0, 2, 0, 3), []byte("abc"))},
		{"no container reply", func() ([]byte, error) {
			return AppendContainer(nil, Container{Type: TypeCgroupName, Status: StatusNoContainer})
		}, ints(0x9006, 24, -12399, 2, 0, 0)},
		{"start request", func() ([]byte, error) {
			return AppendStart(nil, Start{Type: TypeStartReq, IPCType: IPCPipe, Label: []byte("linux"), Args: []byte("/bin/cat -u")})
		}, cat(ints(0x9007, 115, 0, 2, 0, 0, 0, 2, 5, 11), label64("linux"), []byte("/bin/cat -u"))},
		{"start reply", func() ([]byte, error) {
			return AppendStart(nil, Start{Type: TypeStart, PID: 99, IPCType: IPCPipe, Label: []byte("linux")})
		}, cat(ints(0x9008, 104, 0, 2, 99, 0, 0, 2, 5, 0), label64("linux"))},
		{"start failure", func() ([]byte, error) {
			return AppendStart(nil, Start{Type: TypeStart, Status: StatusGeneric, Label: []byte("x")})
		}, cat(ints(0x9008, 104, -12345, 2, 0, 0, 0, 0, 1, 0), label64("x"))},
		{"stop terminate", func() ([]byte, error) {
			return AppendStop(nil, Stop{Type: TypeStopReq, PID: 321, Force: 1})
		}, ints(0x9009, 32, 0, 2, 321, 0, 1, 0)},
		{"stop wait reply", func() ([]byte, error) {
			return AppendStop(nil, Stop{Type: TypeStop, PID: 321, Code: 9})
		}, ints(0x900a, 32, 0, 2, 321, 9, 0, 0)},
		{"stop refused", func() ([]byte, error) {
			return AppendStop(nil, Stop{Type: TypeStop, Status: -int32(syscall.EPERM), PID: 1, Force: 1})
		}, ints(0x900a, 32, -1, 2, 1, 0, 1, 0)},
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

func TestGoldenDecoding(t *testing.T) {
	c, err := DecodeContainer(cat(ints(0x9003, 29, 0, 2, 0, 5), []byte("nginx")))
	if err != nil || c.Type != TypeProcessIDReq || string(c.Name) != "nginx" || c.PID != 0 {
		t.Fatalf("container: %+v %v", c, err)
	}
	s, err := DecodeStart(cat(ints(0x9007, 107, 0, 2, 0, 0, 0, 1, 3, 3), label64("pmd"), []byte("a b")))
	if err != nil || s.IPCType != IPCSocket || string(s.Label) != "pmd" || string(s.Args) != "a b" {
		t.Fatalf("start: %+v %v", s, err)
	}
	st, err := DecodeStop(ints(0x9009, 32, 0, 2, -1, 0, 0, 0))
	if err != nil || st.PID != -1 || st.Force != 0 {
		t.Fatalf("stop: %+v %v", st, err)
	}
	in, err := DecodeInfo(ints(0x9000, 24, 0, 2, 7, 0))
	if err != nil || in.Features != 7 {
		t.Fatalf("info: %+v %v", in, err)
	}
}

// TestDecodeNULTerminatedNames decodes container PDUs as real PCP 6.0.3
// sends them: pmcd, pmda_pmcd, pmdalinux and pmdaproc count the name's
// terminating NUL in namelen (captured: HOSTNAME_REQ length 29, namelen 5,
// "web1\0"). The name ends at its first NUL, on every container type.
func TestDecodeNULTerminatedNames(t *testing.T) {
	tests := []struct {
		name string
		pdu  []byte
		want string
	}{
		{"pmcd hostname as captured", cat(ints(0x9001, 29, 0, 2, 0, 5), []byte("web1\x00")), "web1"},
		{"pmdalinux processid", cat(ints(0x9003, 29, 0, 2, 0, 5), []byte("web1\x00")), "web1"},
		{"pmdaproc cgroupname", cat(ints(0x9005, 29, 0, 2, 0, 5), []byte("web1\x00")), "web1"},
		{"engine-qualified", cat(ints(0x9003, 36, 0, 2, 0, 12), []byte("docker:web1\x00")), "docker:web1"},
		{"kubernetes name", cat(ints(0x9003, 40, 0, 2, 0, 16), []byte("default/pod/app\x00")), "default/pod/app"},
		{"several trailing NULs", cat(ints(0x9005, 31, 0, 2, 0, 7), []byte("web1\x00\x00\x00")), "web1"},
		{"Go client form, no NUL", cat(ints(0x9003, 28, 0, 2, 0, 4), []byte("web1")), "web1"},
		{"reply with NUL", cat(ints(0x9002, 34, 0, 2, 7, 10), []byte("web1-host\x00")), "web1-host"},
		{"only a NUL", cat(ints(0x9001, 25, 0, 2, 42, 1), []byte("\x00")), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeContainer(tc.pdu)
			if err != nil {
				t.Fatalf("DecodeContainer: %v", err)
			}
			if string(c.Name) != tc.want {
				t.Fatalf("name %q, want %q", c.Name, tc.want)
			}
		})
	}
	// The Go client keeps sending the name without a NUL.
	got, err := AppendContainer(nil, Container{Type: TypeHostnameReq, Name: []byte("web1")})
	if want := cat(ints(0x9001, 28, 0, 2, 0, 4), []byte("web1")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encoded % x, want % x (%v)", got, want, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		pdu    []byte
		decode func([]byte) error
	}{
		{"short header", ints(0x9001, 24, 0), decContainer},
		{"length below header", ints(0x9001, 8, 0, 2, 0, 0), decContainer},
		{"length above max", ints(0x9001, MaxPDUSize+1, 0, 2, 0, 0), decContainer},
		{"negative length", ints(0x9001, -24, 0, 2, 0, 0), decContainer},
		{"version 3", ints(0x9001, 24, 0, 3, 0, 0), decContainer},
		{"version 0", ints(0x9001, 24, 0, 0, 0, 0), decContainer},
		{"container too short", ints(0x9001, 20, 0, 2, 0), decContainer},
		{"negative namelen", ints(0x9001, 24, 0, 2, 0, -1), decContainer},
		{"namelen too big", ints(0x9001, 24, 0, 2, 0, 4096), decContainer},
		{"namelen past end", cat(ints(0x9001, 26, 0, 2, 0, 5), []byte("ab")), decContainer},
		{"namelen short of end", cat(ints(0x9001, 26, 0, 2, 0, 1), []byte("ab")), decContainer},
		{"length disagrees with bytes", cat(ints(0x9001, 30, 0, 2, 0, 2), []byte("ab")), decContainer},
		{"start type as container", ints(0x9007, 24, 0, 2, 0, 0), decContainer},
		{"byte after NUL", cat(ints(0x9003, 30, 0, 2, 0, 6), []byte("web\x00x\x00")), decContainer},
		{"NUL inside name", cat(ints(0x9003, 28, 0, 2, 0, 4), []byte("w\x00b1")), decContainer},
		{"start without label", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 0, 1), label64(""), []byte("x")), decStart},
		{"start label too long", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 64, 1), label64(""), []byte("x")), decStart},
		{"start negative label", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, -3, 1), label64(""), []byte("x")), decStart},
		{"start without args", cat(ints(0x9007, 104, 0, 2, 0, 0, 0, 2, 1, 0), label64("a")), decStart},
		{"start args mismatch", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 1, 7), label64("a"), []byte("x")), decStart},
		{"start args too long", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 1, 4096), label64("a"), []byte("x")), decStart},
		{"start unknown ipctype", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 3, 1, 1), label64("a"), []byte("x")), decStart},
		{"start truncated", ints(0x9007, 40, 0, 2, 0, 0, 0, 2, 1, 1), decStart},
		{"stop wrong length", ints(0x9009, 28, 0, 2, 1, 0, 1), decStop},
		{"info wrong type", ints(0x9001, 24, 0, 2, 7, 0), decInfo},
		{"info wrong length", ints(0x9000, 28, 0, 2, 7, 0, 0), decInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.pdu)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func decContainer(b []byte) error { _, err := DecodeContainer(b); return err }
func decStart(b []byte) error     { _, err := DecodeStart(b); return err }
func decStop(b []byte) error      { _, err := DecodeStop(b); return err }
func decInfo(b []byte) error      { _, err := DecodeInfo(b); return err }

func TestEncodeRefusesOversize(t *testing.T) {
	long := bytes.Repeat([]byte("x"), MaxPathLen)
	if _, err := AppendContainer(nil, Container{Type: TypeCgroupName, Name: long}); err == nil {
		t.Error("4096-byte name accepted")
	}
	if _, err := AppendStart(nil, Start{Type: TypeStartReq, Label: long[:64], Args: []byte("a")}); err == nil {
		t.Error("64-byte label accepted")
	}
	if _, err := AppendStart(nil, Start{Type: TypeStartReq, Label: []byte("a"), Args: long}); err == nil {
		t.Error("4096-byte args accepted")
	}
	if _, err := AppendContainer(nil, Container{Type: TypeStop}); err == nil {
		t.Error("stop type accepted as container")
	}
}

// oneByteReader delivers a stream a byte at a time, the worst split a
// socket can produce.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestReadPDUFraming(t *testing.T) {
	a, _ := AppendContainer(nil, Container{Type: TypeHostnameReq, Name: []byte("first")})
	b, _ := AppendStop(nil, Stop{Type: TypeStopReq, PID: -1})
	c, _ := AppendContainer(nil, Container{Type: TypeCgroupNameReq, Name: []byte("third-one")})
	stream := cat(a, b, c)
	for name, r := range map[string]io.Reader{
		"coalesced": bytes.NewReader(stream),
		"split":     oneByteReader{bytes.NewReader(stream)},
	} {
		t.Run(name, func(t *testing.T) {
			buf := make([]byte, MaxPDUSize)
			for i, want := range [][]byte{a, b, c} {
				_, got, err := ReadPDU(r, buf)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("pdu %d: %x %v", i, got, err)
				}
			}
			if _, _, err := ReadPDU(r, buf); err != io.EOF {
				t.Fatalf("after last PDU: %v, want EOF", err)
			}
		})
	}
	t.Run("truncated body", func(t *testing.T) {
		_, _, err := ReadPDU(bytes.NewReader(a[:len(a)-2]), make([]byte, MaxPDUSize))
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad length is not read", func(t *testing.T) {
		_, _, err := ReadPDU(bytes.NewReader(ints(0x9001, 1<<30, 0, 2)), make([]byte, MaxPDUSize))
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestStatusError(t *testing.T) {
	if !errors.Is(StatusError(-int32(syscall.ESRCH)), syscall.ESRCH) {
		t.Error("ESRCH status does not match syscall.ESRCH")
	}
	if errors.Is(StatusError(-int32(syscall.ESRCH)), syscall.EPERM) {
		t.Error("ESRCH status matches EPERM")
	}
	if !errors.Is(StatusError(StatusNoContainer), ErrNoContainer) {
		t.Error("no-container status does not match ErrNoContainer")
	}
	if errors.Is(StatusError(StatusNoContainer), syscall.Errno(12399)) {
		t.Error("PCP code treated as errno")
	}
	if got := StatusError(StatusNoContainer).Error(); !strings.Contains(got, "NOCONTAINER") {
		t.Errorf("message %q", got)
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		argv []string
		wire string
	}{
		{[]string{"/usr/bin/cat"}, "/usr/bin/cat"},
		{[]string{"/bin/pmda", "-d", "60"}, "/bin/pmda -d 60"},
		{[]string{"/bin/pmda", "-l", "my log.txt"}, `/bin/pmda -l "my log.txt"`},
		{[]string{"/bin/pmda", "tab\there"}, "/bin/pmda \"tab\there\""},
		{[]string{"/bin/sh", `say "hi" now`}, `/bin/sh "say \"hi\" now"`},
		{[]string{"/bin/sh", `a"b`}, `/bin/sh a\"b`},
		{[]string{"/bin/sh", `back\slash`}, `/bin/sh back\slash`},
		{[]string{"/bin/sh", `a\"b`}, `/bin/sh a\\"b`},
		{[]string{"/bin/sh", ""}, "/bin/sh "},
	}
	for _, tc := range tests {
		if got := JoinArgs(tc.argv); got != tc.wire {
			t.Errorf("JoinArgs(%q) = %q, want %q", tc.argv, got, tc.wire)
		}
		got, err := SplitArgs(tc.wire)
		if err != nil || !slices.Equal(got, tc.argv) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tc.wire, got, err, tc.argv)
		}
	}
	for _, bad := range []string{"", " x", `"unterminated`, `"a b"c`, `a"b`, `""`} {
		if argv, err := SplitArgs(bad); err == nil {
			t.Errorf("SplitArgs(%q) = %q, want error", bad, argv)
		}
	}
}
