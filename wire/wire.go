// Package wire is the single owner of the pmdaroot version 2 wire format:
// the PDU layouts, type and status codes, framing and validation. The daemon
// and the Go client both use it; nothing else encodes or decodes PDUs.
//
// Every integer is a 32-bit C int in host byte order, as PCP's C peers send
// them. Decoders check every length field before using it, so no allocation
// or slice bound ever depends on an unchecked value from the peer.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version rootd speaks (ROOT_PDU_VERSION).
const Version = 2

// Sizes fixed by PCP's C structures on Linux.
const (
	HeaderSize     = 16
	InfoSize       = HeaderSize + 8
	ContainerFixed = HeaderSize + 8          // header, pid, namelen
	StartFixed     = HeaderSize + 24 + 64    // header, six ints, label
	StopSize       = HeaderSize + 16         // header, pid, code, force, zeroed
	MaxPathLen     = 4096                    // MAXPATHLEN: names, args
	MaxLabelLen    = 64                      // MAXPMDALEN: start labels
	MaxPDUSize     = StartFixed + MaxPathLen // the largest PDU either side may send
)

// Type is a PDU type code.
type Type int32

// PDU types.
const (
	TypeInfo          Type = 0x9000
	TypeHostnameReq   Type = 0x9001
	TypeHostname      Type = 0x9002
	TypeProcessIDReq  Type = 0x9003
	TypeProcessID     Type = 0x9004
	TypeCgroupNameReq Type = 0x9005
	TypeCgroupName    Type = 0x9006
	TypeStartReq      Type = 0x9007
	TypeStart         Type = 0x9008
	TypeStopReq       Type = 0x9009
	TypeStop          Type = 0x900a
)

var typeNames = map[Type]string{
	TypeInfo: "INFO", TypeHostnameReq: "HOSTNAME_REQ", TypeHostname: "HOSTNAME",
	TypeProcessIDReq: "PROCESSID_REQ", TypeProcessID: "PROCESSID",
	TypeCgroupNameReq: "CGROUPNAME_REQ", TypeCgroupName: "CGROUPNAME",
	TypeStartReq: "STARTPMDA_REQ", TypeStart: "STARTPMDA",
	TypeStopReq: "STOPPMDA_REQ", TypeStop: "STOPPMDA",
	TypeListReq: "LIST_REQ", TypeList: "LIST", TypeDescribeReq: "DESCRIBE_REQ", TypeDescribe: "DESCRIBE",
	TypeStatusReq: "STATUS_REQ", TypeStatus: "STATUS",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("PDU(%#x)", int32(t))
}

// Reply returns the reply type of a request type, and false for anything
// that is not a request.
func (t Type) Reply() (Type, bool) {
	switch t {
	case TypeHostnameReq, TypeProcessIDReq, TypeCgroupNameReq, TypeStartReq, TypeStopReq,
		TypeListReq, TypeDescribeReq, TypeStatusReq:
		return t + 1, true
	}
	return 0, false
}

// IsContainer reports whether t uses the container PDU layout.
func (t Type) IsContainer() bool { return t >= TypeHostnameReq && t <= TypeCgroupName }

// Feature bits announced in INFO: PCP's. rootd's own is FeatureView.
const (
	FeatureHostname   = 1 << 0
	FeatureProcessID  = 1 << 1
	FeatureCgroupName = 1 << 2
	AllFeatures       = FeatureHostname | FeatureProcessID | FeatureCgroupName
)

// IPC types of a STARTPMDA request.
const (
	IPCSocket = 1
	IPCPipe   = 2
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed PDU")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

var order = binary.NativeEndian

func getInt(b []byte, off int) int32 { return int32(order.Uint32(b[off:])) }

func putInt(b []byte, off int, v int32) { order.PutUint32(b[off:], uint32(v)) }

// Header is the 16 bytes every PDU starts with.
type Header struct {
	Type    Type
	Length  int32
	Status  int32
	Version int32
}

// ParseHeader decodes and validates a header: the length must lie between
// the header size and MaxPDUSize, and the version must be one we speak.
// The type is not checked here; callers decide which types they accept.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, malformed("%d bytes is shorter than a header", len(b))
	}
	h := Header{
		Type:    Type(getInt(b, 0)),
		Length:  getInt(b, 4),
		Status:  getInt(b, 8),
		Version: getInt(b, 12),
	}
	if h.Length < HeaderSize || h.Length > MaxPDUSize {
		return h, malformed("%v length %d outside [%d, %d]", h.Type, h.Length, HeaderSize, MaxPDUSize)
	}
	if h.Version < 1 || h.Version > Version {
		return h, malformed("%v version %d not supported (max %d)", h.Type, h.Version, Version)
	}
	return h, nil
}

func putHeader(b []byte, t Type, length int, status int32) {
	putInt(b, 0, int32(t))
	putInt(b, 4, int32(length))
	putInt(b, 8, status)
	putInt(b, 12, Version)
}

// ReadPDU reads exactly one PDU, framed by its header's length, into buf
// (which must hold MaxPDUSize bytes) and returns its header and bytes. It
// copes with PDUs that arrive split across reads or several to a read.
func ReadPDU(r io.Reader, buf []byte) (Header, []byte, error) {
	if len(buf) < MaxPDUSize {
		panic("wire: ReadPDU buffer smaller than MaxPDUSize")
	}
	if _, err := io.ReadFull(r, buf[:HeaderSize]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(buf[:HeaderSize])
	if err != nil {
		return h, nil, err
	}
	if _, err := io.ReadFull(r, buf[HeaderSize:h.Length]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, buf[:h.Length], nil
}

// checkFrame validates the header of a whole PDU held in b.
func checkFrame(b []byte, want func(Type) bool, what string) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if !want(h.Type) {
		return h, malformed("%v is not a %s PDU", h.Type, what)
	}
	if int(h.Length) != len(b) {
		return h, malformed("%v header says %d bytes, have %d", h.Type, h.Length, len(b))
	}
	return h, nil
}

// Info is the server's greeting.
type Info struct {
	Status   int32
	Features int32
}

// AppendInfo appends an INFO PDU.
func AppendInfo(dst []byte, in Info) []byte {
	b := make([]byte, InfoSize)
	putHeader(b, TypeInfo, InfoSize, in.Status)
	putInt(b, 16, in.Features)
	return append(dst, b...)
}

// DecodeInfo decodes an INFO PDU, rejecting anything PCP's client rejects.
func DecodeInfo(b []byte) (Info, error) {
	h, err := checkFrame(b, func(t Type) bool { return t == TypeInfo }, "INFO")
	if err != nil {
		return Info{}, err
	}
	if h.Length != InfoSize {
		return Info{}, malformed("INFO length %d, want %d", h.Length, InfoSize)
	}
	return Info{Status: h.Status, Features: getInt(b, 16)}, nil
}

// Container is a HOSTNAME, PROCESSID or CGROUPNAME request or reply.
type Container struct {
	Type   Type
	Status int32
	PID    int32
	// Name is the container name in requests and the hostname or cgroup
	// path in replies. A decoded Name aliases the decoded buffer and stops
	// before the first NUL: PCP sends names with their terminating NUL
	// counted in namelen. Encoding sends Name as given, with no NUL.
	Name []byte
}

// AppendContainer appends a container PDU; names of MaxPathLen bytes or
// more are refused, as PCP's peers refuse them (E2BIG).
func AppendContainer(dst []byte, c Container) ([]byte, error) {
	if !c.Type.IsContainer() {
		return dst, fmt.Errorf("wire: %v is not a container PDU", c.Type)
	}
	if len(c.Name) >= MaxPathLen {
		return dst, fmt.Errorf("wire: %v name of %d bytes exceeds %d", c.Type, len(c.Name), MaxPathLen-1)
	}
	n := ContainerFixed + len(c.Name)
	start := len(dst)
	dst = append(dst, make([]byte, ContainerFixed)...)
	b := dst[start:]
	putHeader(b, c.Type, n, c.Status)
	putInt(b, 16, c.PID)
	putInt(b, 20, int32(len(c.Name)))
	return append(dst, c.Name...), nil
}

// DecodeContainer decodes a whole container PDU.
func DecodeContainer(b []byte) (Container, error) {
	h, err := checkFrame(b, Type.IsContainer, "container")
	if err != nil {
		return Container{}, err
	}
	if h.Length < ContainerFixed {
		return Container{}, malformed("%v length %d below %d", h.Type, h.Length, ContainerFixed)
	}
	namelen := getInt(b, 20)
	if namelen < 0 || namelen >= MaxPathLen {
		return Container{}, malformed("%v namelen %d outside [0, %d)", h.Type, namelen, MaxPathLen)
	}
	if int(namelen) != len(b)-ContainerFixed {
		return Container{}, malformed("%v namelen %d inconsistent with length %d", h.Type, namelen, h.Length)
	}
	name, err := cString(b[ContainerFixed:])
	if err != nil {
		return Container{}, malformed("%v name: %v", h.Type, err)
	}
	return Container{Type: h.Type, Status: h.Status, PID: getInt(b, 16), Name: name}, nil
}

// cString returns a name as PCP's C peers mean it: it ends at its first NUL.
// Real PCP counts the terminating NUL in namelen (pmcd and its agents pass
// the stored attribute's length), so trailing NULs are part of the wire form
// and never part of the name; anything else after a NUL is not a C string
// PCP could have sent, and is refused rather than silently cut off.
func cString(b []byte) ([]byte, error) {
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		return b, nil
	}
	for i := end + 1; i < len(b); i++ {
		if b[i] != 0 {
			return nil, fmt.Errorf("byte %#02x at offset %d follows the terminating NUL at %d", b[i], i, end)
		}
	}
	return b[:end], nil
}

// Start is a STARTPMDA request or reply. File descriptors travel beside it
// as SCM_RIGHTS; InFD and OutFD are only filled in by the receiver.
type Start struct {
	Type    Type
	Status  int32
	PID     int32
	InFD    int32
	OutFD   int32
	IPCType int32
	Label   []byte // 0 < len < MaxLabelLen in requests
	Args    []byte // 0 < len < MaxPathLen in requests, empty in replies
}

// AppendStart appends a STARTPMDA request or reply.
func AppendStart(dst []byte, s Start) ([]byte, error) {
	if s.Type != TypeStartReq && s.Type != TypeStart {
		return dst, fmt.Errorf("wire: %v is not a start PDU", s.Type)
	}
	if len(s.Label) >= MaxLabelLen {
		return dst, fmt.Errorf("wire: start label of %d bytes exceeds %d", len(s.Label), MaxLabelLen-1)
	}
	if len(s.Args) >= MaxPathLen {
		return dst, fmt.Errorf("wire: start args of %d bytes exceed %d", len(s.Args), MaxPathLen-1)
	}
	n := StartFixed + len(s.Args)
	start := len(dst)
	dst = append(dst, make([]byte, StartFixed)...)
	b := dst[start:]
	putHeader(b, s.Type, n, s.Status)
	putInt(b, 16, s.PID)
	putInt(b, 20, s.InFD)
	putInt(b, 24, s.OutFD)
	putInt(b, 28, s.IPCType)
	putInt(b, 32, int32(len(s.Label)))
	putInt(b, 36, int32(len(s.Args)))
	copy(b[40:StartFixed], s.Label)
	return append(dst, s.Args...), nil
}

// DecodeStart decodes a whole STARTPMDA PDU. Requests must carry a label
// and arguments within their limits and a known IPC type; replies need only
// consistent lengths.
func DecodeStart(b []byte) (Start, error) {
	h, err := checkFrame(b, func(t Type) bool { return t == TypeStartReq || t == TypeStart }, "start")
	if err != nil {
		return Start{}, err
	}
	if h.Length < StartFixed {
		return Start{}, malformed("%v length %d below %d", h.Type, h.Length, StartFixed)
	}
	s := Start{
		Type: h.Type, Status: h.Status,
		PID: getInt(b, 16), InFD: getInt(b, 20), OutFD: getInt(b, 24), IPCType: getInt(b, 28),
	}
	namelen, argslen := getInt(b, 32), getInt(b, 36)
	if namelen < 0 || namelen >= MaxLabelLen {
		return Start{}, malformed("%v label length %d outside [0, %d)", h.Type, namelen, MaxLabelLen)
	}
	if argslen < 0 || argslen >= MaxPathLen {
		return Start{}, malformed("%v args length %d outside [0, %d)", h.Type, argslen, MaxPathLen)
	}
	if int(argslen) != len(b)-StartFixed {
		return Start{}, malformed("%v args length %d inconsistent with length %d", h.Type, argslen, h.Length)
	}
	if h.Type == TypeStartReq {
		if namelen == 0 || argslen == 0 {
			return Start{}, malformed("%v needs a label and arguments (got %d and %d bytes)", h.Type, namelen, argslen)
		}
		if s.IPCType != IPCPipe && s.IPCType != IPCSocket {
			return Start{}, malformed("%v unknown ipctype %d", h.Type, s.IPCType)
		}
	}
	s.Label = b[40 : 40+namelen]
	s.Args = b[StartFixed:]
	return s, nil
}

// Stop is a STOPPMDA request or reply: terminate (Force) or reap a child.
type Stop struct {
	Type   Type
	Status int32
	PID    int32
	Code   int32 // wait status in replies
	Force  int32
}

// AppendStop appends a STOPPMDA request or reply.
func AppendStop(dst []byte, s Stop) ([]byte, error) {
	if s.Type != TypeStopReq && s.Type != TypeStop {
		return dst, fmt.Errorf("wire: %v is not a stop PDU", s.Type)
	}
	start := len(dst)
	dst = append(dst, make([]byte, StopSize)...)
	b := dst[start:]
	putHeader(b, s.Type, StopSize, s.Status)
	putInt(b, 16, s.PID)
	putInt(b, 20, s.Code)
	putInt(b, 24, s.Force)
	return dst, nil
}

// DecodeStop decodes a whole STOPPMDA PDU.
func DecodeStop(b []byte) (Stop, error) {
	h, err := checkFrame(b, func(t Type) bool { return t == TypeStopReq || t == TypeStop }, "stop")
	if err != nil {
		return Stop{}, err
	}
	if h.Length != StopSize {
		return Stop{}, malformed("%v length %d, want %d", h.Type, h.Length, StopSize)
	}
	return Stop{Type: h.Type, Status: h.Status, PID: getInt(b, 16), Code: getInt(b, 20), Force: getInt(b, 24)}, nil
}
