// Package pmda speaks the agent side of pmcd's PMDA protocol: the PDUs pmcd
// sends a daemon agent over its pipe, and the replies it expects. It is the
// only code in rootd that knows that byte layout (the root socket's layout
// lives in package wire; the two protocols share nothing).
//
// Every integer is 32 bits in network (big-endian) byte order, and a PDU
// begins with a 12-byte header: length, type, sender. Strings travel with an
// explicit length and are padded with '~' to a multiple of four bytes,
// except where noted. The layouts follow libpcp's p_*.c from PCP 6.0.
package pmda

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type is a PDU type.
type Type int32

// The PDU types of pmcd's protocol (libpcp.h).
const (
	TypeError        Type = 0x7000
	TypeResult       Type = 0x7001
	TypeProfile      Type = 0x7002
	TypeFetch        Type = 0x7003
	TypeDescReq      Type = 0x7004
	TypeDesc         Type = 0x7005
	TypeInstanceReq  Type = 0x7006
	TypeInstance     Type = 0x7007
	TypeTextReq      Type = 0x7008
	TypeText         Type = 0x7009
	TypeControlReq   Type = 0x700a
	TypeCreds        Type = 0x700c
	TypePMNSIDs      Type = 0x700d
	TypePMNSNames    Type = 0x700e
	TypePMNSChild    Type = 0x700f
	TypePMNSTraverse Type = 0x7010
	TypeAttr         Type = 0x7011
	TypeLabelReq     Type = 0x7012
	TypeLabel        Type = 0x7013
	TypeHighResFetch Type = 0x7014
	TypeHighResRes   Type = 0x7015
	TypeDescIDs      Type = 0x7016
	TypeDescs        Type = 0x7017
)

var typeNames = map[Type]string{
	TypeError: "ERROR", TypeResult: "RESULT", TypeProfile: "PROFILE", TypeFetch: "FETCH",
	TypeDescReq: "DESC_REQ", TypeDesc: "DESC", TypeInstanceReq: "INSTANCE_REQ",
	TypeInstance: "INSTANCE", TypeTextReq: "TEXT_REQ", TypeText: "TEXT",
	TypeControlReq: "CONTROL_REQ", TypeCreds: "CREDS", TypePMNSIDs: "PMNS_IDS",
	TypePMNSNames: "PMNS_NAMES", TypePMNSChild: "PMNS_CHILD", TypePMNSTraverse: "PMNS_TRAVERSE",
	TypeAttr: "ATTR", TypeLabelReq: "LABEL_REQ", TypeLabel: "LABEL",
	TypeHighResFetch: "HIGHRES_FETCH", TypeHighResRes: "HIGHRES_RESULT",
	TypeDescIDs: "DESC_IDS", TypeDescs: "DESCS",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("PDU(%#x)", int32(t))
}

// HeaderSize is the size of the PDU header: length, type, from.
const HeaderSize = 12

// MaxRequest is the largest PDU rootd accepts from pmcd. pmcd's requests
// to an agent are small (a FETCH of every metric of this agent is 40
// bytes); the largest legitimate one is a PROFILE naming many instances.
const MaxRequest = 4 << 20

// PCP error codes used in replies (pmapi.h).
const (
	ErrGeneric    int32 = -12345
	ErrText       int32 = -12349
	ErrName       int32 = -12357
	ErrPMID       int32 = -12358
	ErrInDom      int32 = -12359
	ErrInst       int32 = -12360
	ErrIPC        int32 = -12366
	ErrPermission int32 = -12387
	ErrNotConn    int32 = -12391
	ErrType       int32 = -12397
)

// Other protocol constants.
const (
	credVersion   = 1 // CVERSION credential
	pduVersion    = 2 // PDU_VERSION2
	FlagAuth      = 1 << 2
	FlagContainer = 1 << 6

	NullID   uint32 = 0xffffffff // PM_ID_NULL, PM_INDOM_NULL, PM_IN_NULL
	InstNull int32  = -1

	TextOneLine = 1
	TextHelp    = 2
	TextPMID    = 4
	TextInDom   = 8
	textDirect  = 16

	LabelContext   = 1 << 0
	LabelDomain    = 1 << 1
	LabelInDom     = 1 << 2
	LabelCluster   = 1 << 3
	LabelItem      = 1 << 4
	LabelInstances = 1 << 5
	labelCompound  = 1 << 6
	labelOptional  = 1 << 7

	ProfileInclude = 0
	ProfileExclude = 1

	valInsitu = 0
	valDptr   = 1

	TypeU32     = 1
	TypeString  = 6
	SemInstant  = 3
	SemDiscrete = 4
)

// AttrContainer is PCP_ATTR_CONTAINER, the attribute pmcd forwards for a
// client that asked for a container.
const AttrContainer = 15

// ErrMalformed is returned by every decoder for a PDU whose contents do
// not match its layout.
var ErrMalformed = errors.New("malformed PDU")

var be = binary.BigEndian

// Header is the fixed start of every PDU.
type Header struct {
	Len  int
	Type Type
	From int32
}

// ParseHeader decodes a header and checks its length against limit.
func ParseHeader(b []byte, limit int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, want a 12-byte header", ErrMalformed, len(b))
	}
	h := Header{Len: int(int32(be.Uint32(b))), Type: Type(be.Uint32(b[4:])), From: int32(be.Uint32(b[8:]))}
	if h.Len < HeaderSize || h.Len > limit {
		return h, fmt.Errorf("%w: length %d out of range [%d, %d]", ErrMalformed, h.Len, HeaderSize, limit)
	}
	return h, nil
}

// ReadPDU reads one whole PDU into buf (grown as needed, never beyond
// MaxRequest) and returns it with its header.
func ReadPDU(r *bufio.Reader, buf []byte) ([]byte, Header, error) {
	hb, err := r.Peek(HeaderSize)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hb) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return buf, Header{}, err
	}
	h, err := ParseHeader(hb, MaxRequest)
	if err != nil {
		return buf, h, err
	}
	if cap(buf) < h.Len {
		buf = make([]byte, h.Len)
	}
	buf = buf[:h.Len]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, h, err
	}
	return buf, h, nil
}

// PMID and InDom numbers, as PCP packs them: domain 9 bits, then cluster
// 12 bits and item 10 bits, or serial 22 bits.
func PMID(domain, cluster, item uint32) uint32 {
	return (domain&0x1ff)<<22 | (cluster&0xfff)<<10 | item&0x3ff
}

// InDom packs an instance domain identifier.
func InDom(domain, serial uint32) uint32 { return (domain&0x1ff)<<22 | serial&0x3fffff }

// PMIDString formats a PMID the way PCP prints it: D.C.I.
func PMIDString(id uint32) string {
	return fmt.Sprintf("%d.%d.%d", id>>22&0x1ff, id>>10&0xfff, id&0x3ff)
}

// pdu builds one PDU in a reusable buffer.
type pdu struct{ b []byte }

func (p *pdu) start(t Type) {
	p.b = append(p.b[:0], 0, 0, 0, 0)
	p.b = be.AppendUint32(p.b, uint32(t))
	p.b = be.AppendUint32(p.b, 0) // from: FROM_ANON, as libpcp_pmda sends
}
func (p *pdu) u32(v uint32) { p.b = be.AppendUint32(p.b, v) }
func (p *pdu) i32(v int32)  { p.b = be.AppendUint32(p.b, uint32(v)) }

func (p *pdu) finish() []byte {
	be.PutUint32(p.b, uint32(len(p.b)))
	return p.b
}

func pad4(n int) int { return (n + 3) &^ 3 }

// ---- CREDS ----

// Cred is one CVERSION credential.
type Cred struct {
	Type    uint8
	Version uint8
	Flags   uint16
}

// AppendCreds builds the CREDS PDU an agent sends first: one CVERSION
// credential with the protocol version and the features it wants.
func AppendCreds(b []byte, flags uint16) []byte {
	p := pdu{b}
	p.start(TypeCreds)
	p.i32(1)
	p.u32(uint32(credVersion)<<24 | uint32(pduVersion)<<16 | uint32(flags))
	return p.finish()
}

// DecodeCreds decodes a CREDS PDU.
func DecodeCreds(b []byte) ([]Cred, error) {
	if len(b) < HeaderSize+4 {
		return nil, ErrMalformed
	}
	n := int32(be.Uint32(b[12:]))
	if n < 0 || n > 1024 || len(b) != HeaderSize+4+4*int(n) {
		return nil, ErrMalformed
	}
	out := make([]Cred, n)
	for i := range out {
		v := be.Uint32(b[16+4*i:])
		out[i] = Cred{Type: uint8(v >> 24), Version: uint8(v >> 16), Flags: uint16(v)}
	}
	return out, nil
}

// ---- ERROR ----

// AppendError builds an ERROR PDU carrying code.
func AppendError(b []byte, code int32) []byte {
	p := pdu{b}
	p.start(TypeError)
	p.i32(code)
	return p.finish()
}

// DecodeError decodes an ERROR PDU (plain or extended).
func DecodeError(b []byte) (int32, error) {
	if len(b) != HeaderSize+4 && len(b) != HeaderSize+8 {
		return 0, ErrMalformed
	}
	return int32(be.Uint32(b[12:])), nil
}

// ---- PROFILE ----

// Profile says which instances pmcd's current client wants.
type Profile struct {
	Ctx   int32
	State int32 // ProfileInclude or ProfileExclude, for indoms not listed
	InDom []InDomProfile
}

// InDomProfile is the profile of one instance domain.
type InDomProfile struct {
	InDom     uint32
	State     int32
	Instances []int32
}

// In reports whether inst of indom is wanted (libpcp's __pmInProfile).
func (p *Profile) In(indom uint32, inst int32) bool {
	if p == nil {
		return true
	}
	for _, ip := range p.InDom {
		if ip.InDom != indom {
			continue
		}
		for _, i := range ip.Instances {
			if i == inst {
				return ip.State != ProfileInclude
			}
		}
		return ip.State == ProfileInclude
	}
	return p.State == ProfileInclude
}

// DecodeProfile decodes a PROFILE PDU: ctx, global state, the number of
// per-indom entries and a pad word; then each entry (indom, state, number
// of instances, pad); then all the instances, entry after entry.
func DecodeProfile(b []byte) (*Profile, error) {
	if len(b) < HeaderSize+16 {
		return nil, ErrMalformed
	}
	p := &Profile{Ctx: int32(be.Uint32(b[12:])), State: int32(be.Uint32(b[16:]))}
	n := int32(be.Uint32(b[20:]))
	if p.Ctx < 0 || n < 0 || int64(n)*16 > int64(len(b)-28) {
		return nil, ErrMalformed
	}
	off := 28
	p.InDom = make([]InDomProfile, n)
	counts := make([]int32, n)
	for i := range p.InDom {
		p.InDom[i] = InDomProfile{InDom: be.Uint32(b[off:]), State: int32(be.Uint32(b[off+4:]))}
		counts[i] = int32(be.Uint32(b[off+8:]))
		off += 16
	}
	for i, c := range counts {
		if c < 0 || int64(c)*4 > int64(len(b)-off) {
			return nil, ErrMalformed
		}
		if c > 0 {
			p.InDom[i].Instances = make([]int32, c)
			for j := range p.InDom[i].Instances {
				p.InDom[i].Instances[j] = int32(be.Uint32(b[off:]))
				off += 4
			}
		}
	}
	return p, nil
}

// ---- FETCH and RESULT ----

// DecodeFetch decodes a FETCH PDU: ctx, an unused 8-byte timestamp, the
// number of PMIDs and the PMIDs.
func DecodeFetch(b []byte) (ctx int32, pmids []uint32, err error) {
	if len(b) < HeaderSize+16 {
		return 0, nil, ErrMalformed
	}
	ctx = int32(be.Uint32(b[12:]))
	n := int32(be.Uint32(b[24:]))
	if n <= 0 || len(b) != HeaderSize+16+4*int(n) {
		return 0, nil, ErrMalformed
	}
	pmids = make([]uint32, n)
	for i := range pmids {
		pmids[i] = be.Uint32(b[24+4+4*i:])
	}
	return ctx, pmids, nil
}

// Value is one instance's value of a metric: a U32 or a string.
type Value struct {
	Inst   int32
	U32    uint32
	Str    string
	IsText bool
}

// ValueSet is one metric's part of a RESULT: its values, or (Status < 0)
// an error code instead.
type ValueSet struct {
	PMID   uint32
	Status int32
	Values []Value
}

// AppendResult builds a RESULT PDU: an 8-byte timestamp (zero: an agent
// reports no time and no state change), the number of metrics, then per
// metric its PMID, the number of values (or an error code) and, when there
// are values, the value format and (instance, value) pairs. Strings go in
// value blocks after all the metrics, each one a 4-byte header (type in
// the top byte, length including the header below) and the NUL-terminated
// text padded to four bytes; a pair then holds the block's offset from
// the start of the PDU in 4-byte words.
func AppendResult(b []byte, sets []ValueSet) []byte {
	p := pdu{b}
	p.start(TypeResult)
	p.u32(0)
	p.u32(0)
	p.i32(int32(len(sets)))
	// First pass: the size of the fixed part tells where blocks begin.
	fixed := len(p.b)
	for _, s := range sets {
		fixed += 8
		if s.Status >= 0 && len(s.Values) > 0 {
			fixed += 4 + 8*len(s.Values)
		}
	}
	block := fixed
	var blocks []string
	for _, s := range sets {
		p.u32(s.PMID)
		if s.Status < 0 {
			p.i32(s.Status)
			continue
		}
		p.i32(int32(len(s.Values)))
		if len(s.Values) == 0 {
			continue
		}
		text := s.Values[0].IsText
		if text {
			p.i32(valDptr)
		} else {
			p.i32(valInsitu)
		}
		for _, v := range s.Values {
			p.i32(v.Inst)
			if text {
				p.u32(uint32(block / 4))
				block += pad4(4 + len(v.Str) + 1)
				blocks = append(blocks, v.Str)
			} else {
				p.u32(v.U32)
			}
		}
	}
	for _, s := range blocks {
		vlen := 4 + len(s) + 1
		p.u32(uint32(TypeString)<<24 | uint32(vlen)&0xffffff)
		p.b = append(p.b, s...)
		p.b = append(p.b, 0)
		for n := vlen; n%4 != 0; n++ {
			p.b = append(p.b, '~')
		}
	}
	return p.finish()
}

// ---- DESC ----

// Desc is a metric descriptor (pmDesc).
type Desc struct {
	PMID  uint32
	Type  int32
	InDom uint32
	Sem   int32
	Units uint32 // packed pmUnits; 0 = dimensionless
}

// DecodeDescReq decodes a DESC_REQ PDU: one PMID.
func DecodeDescReq(b []byte) (uint32, error) {
	if len(b) != HeaderSize+4 {
		return 0, ErrMalformed
	}
	return be.Uint32(b[12:]), nil
}

// AppendDesc builds a DESC PDU: pmid, type, indom, sem, units.
func AppendDesc(b []byte, d Desc) []byte {
	p := pdu{b}
	p.start(TypeDesc)
	p.u32(d.PMID)
	p.i32(d.Type)
	p.u32(d.InDom)
	p.i32(d.Sem)
	p.u32(d.Units)
	return p.finish()
}

// ---- INSTANCE ----

// InstanceReq asks for all of an instance domain (Inst = InstNull, Name
// empty), the name of one instance, or the number of one name.
type InstanceReq struct {
	InDom uint32
	Inst  int32
	Name  string
}

// DecodeInstanceReq decodes an INSTANCE_REQ PDU: indom, an unused 8-byte
// timestamp, inst, namelen and the name (padded).
func DecodeInstanceReq(b []byte) (InstanceReq, error) {
	if len(b) < HeaderSize+20 {
		return InstanceReq{}, ErrMalformed
	}
	r := InstanceReq{InDom: be.Uint32(b[12:]), Inst: int32(be.Uint32(b[24:]))}
	n := int32(be.Uint32(b[28:]))
	if n < 0 || int(n) > len(b)-32 {
		return InstanceReq{}, ErrMalformed
	}
	name := b[32 : 32+n]
	for i, c := range name { // libpcp copies it with strncpy
		if c == 0 {
			name = name[:i]
			break
		}
	}
	r.Name = string(name)
	return r, nil
}

// Instance is one (number, name) pair of an INSTANCE reply; Inst is
// InstNull or Name empty where the reply carries only the other.
type Instance struct {
	Inst int32
	Name string
}

// AppendInstance builds an INSTANCE PDU: indom, count, then per instance
// its number, name length and padded name.
func AppendInstance(b []byte, indom uint32, insts []Instance) []byte {
	p := pdu{b}
	p.start(TypeInstance)
	p.u32(indom)
	p.i32(int32(len(insts)))
	for _, in := range insts {
		p.i32(in.Inst)
		p.i32(int32(len(in.Name)))
		p.b = append(p.b, in.Name...)
		for n := len(in.Name); n%4 != 0; n++ {
			p.b = append(p.b, '~')
		}
	}
	return p.finish()
}

// ---- TEXT ----

// DecodeTextReq decodes a TEXT_REQ PDU: ident (PMID or indom) and type.
func DecodeTextReq(b []byte) (ident uint32, typ int32, err error) {
	if len(b) < HeaderSize+8 {
		return 0, 0, ErrMalformed
	}
	return be.Uint32(b[12:]), int32(be.Uint32(b[16:])), nil
}

// AppendText builds a TEXT PDU: ident, the text's length and the text,
// padded, without a NUL.
func AppendText(b []byte, ident uint32, text string) []byte {
	p := pdu{b}
	p.start(TypeText)
	p.u32(ident)
	p.i32(int32(len(text)))
	p.b = append(p.b, text...)
	for n := len(text); n%4 != 0; n++ {
		p.b = append(p.b, '~')
	}
	return p.finish()
}

// ---- LABEL ----

// DecodeLabelReq decodes a LABEL_REQ PDU: ident and type.
func DecodeLabelReq(b []byte) (ident uint32, typ int32, err error) {
	if len(b) < HeaderSize+8 {
		return 0, 0, ErrMalformed
	}
	return be.Uint32(b[12:]), int32(be.Uint32(b[16:])), nil
}

// Label is one name:value pair of a label set, as offsets into its JSON.
type Label struct {
	Name, NameLen   int
	Flags           uint8
	Value, ValueLen int
}

// LabelSet is one JSON object of labels, for one instance or none.
type LabelSet struct {
	Inst   int32
	JSON   string
	Labels []Label
}

// AppendLabel builds a LABEL PDU: ident, type, a pad word, the number of
// sets; then per set its instance, label count, the offset of its JSON in
// the PDU, the JSON's length and 8 bytes per label (name offset (16 bits),
// name length and flags (a byte each), value offset and length (16 bits
// each)); then the JSON strings one after another, unpadded.
func AppendLabel(b []byte, ident uint32, typ int32, sets []LabelSet) []byte {
	p := pdu{b}
	p.start(TypeLabel)
	p.u32(ident)
	p.i32(typ)
	p.u32(0)
	p.i32(int32(len(sets)))
	json := len(p.b)
	for _, s := range sets {
		json += 16 + 8*len(s.Labels)
	}
	for _, s := range sets {
		p.i32(s.Inst)
		p.i32(int32(len(s.Labels)))
		p.i32(int32(json))
		p.i32(int32(len(s.JSON)))
		for _, l := range s.Labels {
			p.b = be.AppendUint16(p.b, uint16(l.Name))
			p.b = append(p.b, uint8(l.NameLen), l.Flags)
			p.b = be.AppendUint16(p.b, uint16(l.Value))
			p.b = be.AppendUint16(p.b, uint16(l.ValueLen))
		}
		json += len(s.JSON)
	}
	for _, s := range sets {
		p.b = append(p.b, s.JSON...)
	}
	return p.finish()
}

// ---- ATTR ----

// DecodeAttr decodes an ATTR PDU: the attribute code and its value (as
// pmcd sends it: with a trailing NUL, which is kept).
func DecodeAttr(b []byte) (attr int32, value []byte, err error) {
	if len(b) < HeaderSize+4 || len(b)-16 >= 1<<16 {
		return 0, nil, ErrMalformed
	}
	return int32(be.Uint32(b[12:])), b[16:], nil
}
