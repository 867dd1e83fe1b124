package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// The view extension: LIST, DESCRIBE and STATUS, rootd's own requests for
// operators (rootctl), announced by FeatureView in INFO.
//
// PCP's PDU types are all 16-bit numbers: libpcp's 0x7000-0x7017 and
// pmdaroot's 0x9000-0x900c (0x900b/0x900c reserved, commented out, for
// SASLAUTH). The view types have 0x7264 ("rd") in their upper 16 bits, so no
// number PCP has allocated, or would allocate by counting on from either
// block, can ever equal one. PCP's pmdaroot closes a client that sends a
// type it does not know, so a client must check FeatureView first; see
// docs/protocol.md.
const (
	TypeListReq     Type = 0x72640001
	TypeList        Type = 0x72640002
	TypeDescribeReq Type = 0x72640003
	TypeDescribe    Type = 0x72640004
	TypeStatusReq   Type = 0x72640005
	TypeStatus      Type = 0x72640006
)

// FeatureView in INFO announces the view requests. PCP defines bits 0-2 and
// its client (pmdaRootConnect, src/libpcp_pmda/src/root.c) only prints the
// features word in a debug message, so an unknown bit changes nothing for
// it. Bit 16 leaves bits 3-15 free for PCP's own growth.
const FeatureView = 1 << 16

// IsView reports whether t is a view request or reply.
func (t Type) IsView() bool { return t >= TypeListReq && t <= TypeStatus }

// IsViewRequest reports whether t is a view request.
func (t Type) IsViewRequest() bool {
	return t == TypeListReq || t == TypeDescribeReq || t == TypeStatusReq
}

// Sizes of the view PDUs.
const (
	// ViewRequestFixed is a view request without its name: header, pid,
	// namelen, exactly the container PDU's layout.
	ViewRequestFixed = ContainerFixed
	// ViewFixed is a view reply chunk without its data: header, seq,
	// flags, datalen.
	ViewFixed = HeaderSize + 12
	// MaxViewChunk is the most document bytes one reply PDU carries.
	MaxViewChunk = MaxPDUSize - ViewFixed
	// MaxViewDocument bounds a whole reply document (all its chunks): about
	// 16,000 PDUs. A listing of 10,000 containers with labels is a few MiB.
	MaxViewDocument = 64 << 20
)

// ViewLast marks the last chunk of a reply in the flags word.
const ViewLast = 1

// ViewRequest is a LIST, DESCRIBE or STATUS request.
type ViewRequest struct {
	Type Type
	// PID is the host process DESCRIBE asks about when Name is empty; 0
	// otherwise.
	PID int32
	// Name is the container DESCRIBE asks about, resolved as container
	// requests are. A decoded Name aliases the buffer and stops before its
	// first NUL, as container names do.
	Name []byte
}

func (r ViewRequest) check() error {
	switch r.Type {
	case TypeListReq, TypeStatusReq:
		if r.PID != 0 || len(r.Name) != 0 {
			return fmt.Errorf("%v takes no pid or name (pid %d, %d name bytes)", r.Type, r.PID, len(r.Name))
		}
	case TypeDescribeReq:
		switch {
		case len(r.Name) > 0 && r.PID != 0:
			return fmt.Errorf("%v takes a name or a pid, not both", r.Type)
		case len(r.Name) == 0 && r.PID <= 0:
			return fmt.Errorf("%v needs a name or a pid above 0 (pid %d)", r.Type, r.PID)
		}
	default:
		return fmt.Errorf("%v is not a view request", r.Type)
	}
	return nil
}

// AppendViewRequest appends a view request, refusing one the server would
// refuse.
func AppendViewRequest(dst []byte, r ViewRequest) ([]byte, error) {
	if err := r.check(); err != nil {
		return dst, fmt.Errorf("wire: %w", err)
	}
	if len(r.Name) >= MaxPathLen {
		return dst, fmt.Errorf("wire: %v name of %d bytes exceeds %d", r.Type, len(r.Name), MaxPathLen-1)
	}
	start := len(dst)
	dst = append(dst, make([]byte, ViewRequestFixed)...)
	b := dst[start:]
	putHeader(b, r.Type, ViewRequestFixed+len(r.Name), 0)
	putInt(b, 16, r.PID)
	putInt(b, 20, int32(len(r.Name)))
	return append(dst, r.Name...), nil
}

// DecodeViewRequest decodes and validates a whole view request: the name
// follows the container PDU's rules (it ends at its first NUL; trailing
// NULs are accepted, anything else after a NUL is not), the status is 0,
// LIST and STATUS carry neither pid nor name, and DESCRIBE carries exactly
// one of a name or a pid above 0.
func DecodeViewRequest(b []byte) (ViewRequest, error) {
	h, err := checkFrame(b, Type.IsViewRequest, "view request")
	if err != nil {
		return ViewRequest{}, err
	}
	if h.Length < ViewRequestFixed {
		return ViewRequest{}, malformed("%v length %d below %d", h.Type, h.Length, ViewRequestFixed)
	}
	if h.Status != 0 {
		return ViewRequest{}, malformed("%v request carries status %d", h.Type, h.Status)
	}
	namelen := getInt(b, 20)
	if namelen < 0 || namelen >= MaxPathLen {
		return ViewRequest{}, malformed("%v namelen %d outside [0, %d)", h.Type, namelen, MaxPathLen)
	}
	if int(namelen) != len(b)-ViewRequestFixed {
		return ViewRequest{}, malformed("%v namelen %d inconsistent with length %d", h.Type, namelen, h.Length)
	}
	if (h.Type == TypeListReq || h.Type == TypeStatusReq) && namelen != 0 {
		return ViewRequest{}, malformed("%v carries %d name bytes", h.Type, namelen)
	}
	name, err := cString(b[ViewRequestFixed:])
	if err != nil {
		return ViewRequest{}, malformed("%v name: %v", h.Type, err)
	}
	r := ViewRequest{Type: h.Type, PID: getInt(b, 16), Name: name}
	if err := r.check(); err != nil {
		return ViewRequest{}, malformed("%v", err)
	}
	return r, nil
}

// View is one chunk of a view reply. A reply is a sequence of chunks of
// its request's reply type, numbered from 0, all with the same status; the
// last has Last set. Concatenated, their Data is one JSON ViewDocument.
type View struct {
	Type   Type
	Status int32
	Seq    int32
	Last   bool
	Data   []byte // at most MaxViewChunk bytes; aliases the decoded buffer
}

// AppendView appends one reply chunk.
func AppendView(dst []byte, v View) ([]byte, error) {
	if !v.Type.IsView() || v.Type.IsViewRequest() {
		return dst, fmt.Errorf("wire: %v is not a view reply", v.Type)
	}
	if len(v.Data) > MaxViewChunk {
		return dst, fmt.Errorf("wire: %v chunk of %d bytes exceeds %d", v.Type, len(v.Data), MaxViewChunk)
	}
	if v.Seq < 0 {
		return dst, fmt.Errorf("wire: %v chunk number %d", v.Type, v.Seq)
	}
	start := len(dst)
	dst = append(dst, make([]byte, ViewFixed)...)
	b := dst[start:]
	putHeader(b, v.Type, ViewFixed+len(v.Data), v.Status)
	putInt(b, 16, v.Seq)
	if v.Last {
		putInt(b, 20, ViewLast)
	}
	putInt(b, 24, int32(len(v.Data)))
	return append(dst, v.Data...), nil
}

// DecodeView decodes one whole reply chunk. Unknown flag bits, a negative
// chunk number and a data length other than the PDU's are malformed; so is
// an empty chunk that is not the last, which would let a peer send chunks
// forever without coming nearer MaxViewDocument.
func DecodeView(b []byte) (View, error) {
	h, err := checkFrame(b, func(t Type) bool { return t.IsView() && !t.IsViewRequest() }, "view reply")
	if err != nil {
		return View{}, err
	}
	if h.Length < ViewFixed {
		return View{}, malformed("%v length %d below %d", h.Type, h.Length, ViewFixed)
	}
	seq, flags, datalen := getInt(b, 16), getInt(b, 20), getInt(b, 24)
	if seq < 0 {
		return View{}, malformed("%v chunk number %d", h.Type, seq)
	}
	if flags&^ViewLast != 0 {
		return View{}, malformed("%v unknown flags %#x", h.Type, flags)
	}
	if datalen < 0 || int(datalen) != len(b)-ViewFixed {
		return View{}, malformed("%v datalen %d inconsistent with length %d", h.Type, datalen, h.Length)
	}
	v := View{Type: h.Type, Status: h.Status, Seq: seq, Last: flags&ViewLast != 0, Data: b[ViewFixed:]}
	if !v.Last && datalen == 0 {
		return View{}, malformed("%v chunk %d is empty and not the last", h.Type, seq)
	}
	return v, nil
}

// ViewChunks splits a document into the reply chunks that carry it, for a
// sender; yield appends nothing, it is given each chunk to send in turn.
func ViewChunks(t Type, status int32, doc []byte, yield func(View) error) error {
	if len(doc) > MaxViewDocument {
		return fmt.Errorf("wire: %v document of %d bytes exceeds %d", t, len(doc), MaxViewDocument)
	}
	for seq := int32(0); ; seq++ {
		n := min(len(doc), MaxViewChunk)
		v := View{Type: t, Status: status, Seq: seq, Last: n == len(doc), Data: doc[:n]}
		if err := yield(v); err != nil {
			return err
		}
		if v.Last {
			return nil
		}
		doc = doc[n:]
	}
}

// ViewAssembler collects the chunks of one reply into its document, for a
// receiver. It refuses chunks of another type, out of order, with a status
// other than the first chunk's, after the last, or beyond MaxViewDocument.
type ViewAssembler struct {
	want   Type
	status int32
	next   int32
	done   bool
	doc    []byte
}

// NewViewAssembler returns an assembler for a reply of type want.
func NewViewAssembler(want Type) *ViewAssembler { return &ViewAssembler{want: want} }

// Add adds a decoded chunk, copying its data, and reports whether the
// reply is complete.
func (a *ViewAssembler) Add(v View) (bool, error) {
	switch {
	case a.done:
		return true, malformed("%v chunk %d after the last", v.Type, v.Seq)
	case v.Type != a.want:
		return false, malformed("got %v chunk, want %v", v.Type, a.want)
	case v.Seq != a.next:
		return false, malformed("%v chunk %d out of order, want %d", v.Type, v.Seq, a.next)
	case a.next > 0 && v.Status != a.status:
		return false, malformed("%v chunk %d has status %d, first had %d", v.Type, v.Seq, v.Status, a.status)
	case len(a.doc)+len(v.Data) > MaxViewDocument:
		return false, malformed("%v reply exceeds %d bytes", v.Type, MaxViewDocument)
	}
	a.status = v.Status
	a.doc = append(a.doc, v.Data...)
	a.next++
	a.done = v.Last
	return a.done, nil
}

// Status returns the reply's status (that of its chunks).
func (a *ViewAssembler) Status() int32 { return a.status }

// Document returns the document gathered so far.
func (a *ViewAssembler) Document() []byte { return a.doc }

// ViewVersion is the version of the view documents this package writes and
// reads. Fields may be added without changing it; a reader ignores fields
// it does not know. A change a reader could misread bumps it, and readers
// refuse versions they do not know.
const ViewVersion = 1

// ContainerInfo is one container as the daemon's index has it.
type ContainerInfo struct {
	Engine    string            `json:"engine"`
	ID        string            `json:"id"`
	Names     []string          `json:"names,omitempty"`
	State     string            `json:"state"`
	PID       int               `json:"pid,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Cgroup    string            `json:"cgroup,omitempty"`
	Hostname  string            `json:"hostname,omitempty"`
	// LabelsRedacted says labels were left out because the peer is not
	// root (see docs/security.md); Labels then holds only the Kubernetes
	// identity keys every allowed peer may already query by.
	LabelsRedacted bool `json:"labels_redacted,omitempty"`
}

// EngineStatus is one engine's health as the daemon's resolver tracks it.
type EngineStatus struct {
	Name       string         `json:"name"`
	Health     string         `json:"health"` // available, slow, failing, hung, unavailable, unknown
	Error      string         `json:"error,omitempty"`
	LastError  time.Time      `json:"last_error,omitzero"`
	Containers int            `json:"containers"`
	States     map[string]int `json:"states,omitempty"`
	// LastRefresh is when a List of the engine last succeeded.
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	// Lists counts the engine's finished Lists; LastList is how long the
	// newest took.
	Lists    uint64        `json:"lists,omitempty"`
	LastList time.Duration `json:"last_list_ns,omitempty"`
}

// Status is the daemon's own state.
type Status struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Ready: the socket is bound (the daemon is answering) and the index
	// has been built from every engine's first List.
	Ready      bool           `json:"ready"`
	Containers int            `json:"containers"`
	Engines    []EngineStatus `json:"engines"`
	// Commit is the source commit of the daemon's build.
	Commit string `json:"commit,omitempty"`
	// Clients is the number of clients connected, this one included.
	Clients int `json:"clients,omitempty"`
}

// ViewDocument is the JSON a view reply carries. Which fields are set
// depends on the reply type and status (docs/protocol.md):
//
//   - LIST, status 0: Containers (absent when there are none).
//   - DESCRIBE, status 0: Container; ESRCH (not running): Container, as
//     far as known, and Error; ENOTUNIQ: Candidates and Error.
//   - STATUS, status 0: Status.
//   - any other non-zero status: Error at most.
type ViewDocument struct {
	Version    int             `json:"version"`
	Containers []ContainerInfo `json:"containers,omitempty"`
	Container  *ContainerInfo  `json:"container,omitempty"`
	Candidates []ContainerInfo `json:"candidates,omitempty"`
	Status     *Status         `json:"status,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// ErrViewDocument is wrapped by every document decoding error.
var ErrViewDocument = errors.New("malformed view document")

// DecodeViewDocument decodes and checks the document of a complete reply
// of type t with the given status: the version must be ViewVersion, the
// fields present must be those the reply type and status carry, and every
// container must have an engine and an ID.
func DecodeViewDocument(t Type, status int32, doc []byte) (ViewDocument, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %v: "+format, append([]any{ErrViewDocument, t}, args...)...)
	}
	if len(doc) == 0 {
		if status == 0 {
			return ViewDocument{}, bad("empty document")
		}
		return ViewDocument{Version: ViewVersion}, nil // a bare error status
	}
	if len(doc) > MaxViewDocument {
		return ViewDocument{}, bad("%d bytes exceeds %d", len(doc), MaxViewDocument)
	}
	var d ViewDocument
	if err := json.Unmarshal(doc, &d); err != nil {
		return ViewDocument{}, bad("%v", err)
	}
	if d.Version != ViewVersion {
		return ViewDocument{}, bad("version %d, this client reads %d", d.Version, ViewVersion)
	}
	has := func(name string, set bool, allowed bool) error {
		if set && !allowed {
			return bad("unexpected %q with status %d", name, status)
		}
		return nil
	}
	ok := status == 0
	notRunning, ambiguous := status == StatusFromErrno(syscall.ESRCH), status == StatusFromErrno(syscall.ENOTUNIQ)
	for _, err := range []error{
		has("containers", d.Containers != nil, t == TypeList && ok),
		has("container", d.Container != nil, t == TypeDescribe && (ok || notRunning)),
		has("candidates", d.Candidates != nil, t == TypeDescribe && ambiguous),
		has("status", d.Status != nil, t == TypeStatus && ok),
		has("error", d.Error != "", !ok),
	} {
		if err != nil {
			return ViewDocument{}, err
		}
	}
	switch {
	case t == TypeDescribe && ok && d.Container == nil:
		return ViewDocument{}, bad("no container")
	case t == TypeStatus && ok && d.Status == nil:
		return ViewDocument{}, bad("no status")
	}
	check := func(what string, c *ContainerInfo) error {
		if c.Engine == "" || c.ID == "" {
			return bad("%s without engine or id: %+v", what, *c)
		}
		if c.PID < 0 {
			return bad("%s %s:%s with pid %d", what, c.Engine, c.ID, c.PID)
		}
		return nil
	}
	if d.Container != nil {
		if err := check("container", d.Container); err != nil {
			return ViewDocument{}, err
		}
	}
	for i := range d.Containers {
		if err := check("container", &d.Containers[i]); err != nil {
			return ViewDocument{}, err
		}
	}
	for i := range d.Candidates {
		if err := check("candidate", &d.Candidates[i]); err != nil {
			return ViewDocument{}, err
		}
	}
	if d.Status != nil {
		for _, e := range d.Status.Engines {
			if e.Name == "" {
				return ViewDocument{}, bad("engine without a name")
			}
		}
	}
	return d, nil
}
