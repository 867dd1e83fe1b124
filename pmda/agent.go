package pmda

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rootd-project/rootd/resolver"
)

// Source is where the agent reads containers from; *resolver.Resolver is
// one. Listing must answer from memory, never by asking an engine.
type Source interface {
	Listing() (gen uint64, list []resolver.Listed)
}

// Agent answers pmcd as the root PMDA (domain 1).
type Agent struct {
	log *slog.Logger
	src atomic.Pointer[sourceBox]
	// Flags are the features asked for in the credentials handshake;
	// FlagContainer makes pmcd forward its clients' container attributes.
	flags uint16

	inst    *instances
	profile *Profile
	attrs   map[int32]map[int32]string // per pmcd client context
	out     []byte
}

type sourceBox struct{ s Source }

// New returns an agent with no source yet: until SetSource, the instance
// domain is empty and every containers.* metric has no values.
func New(log *slog.Logger) *Agent {
	if log == nil {
		log = slog.Default()
	}
	return &Agent{log: log, flags: FlagContainer, inst: newInstances(), attrs: map[int32]map[int32]string{}}
}

// SetSource gives the agent its containers; safe to call while Serve runs.
func (a *Agent) SetSource(s Source) { a.src.Store(&sourceBox{s}) }

// ErrHandshake means pmcd did not complete the credentials exchange.
var ErrHandshake = errors.New("pmcd handshake failed")

// Serve runs the agent's side of the protocol on in (pmcd's requests) and
// out (replies) until pmcd closes in, ctx is cancelled (which only takes
// effect when in's read returns), or the exchange breaks. It returns nil
// when pmcd closed the pipe between PDUs.
//
// The handshake is sent at once: the agent speaks first, with a CREDS PDU
// asking for protocol version 2; pmcd answers with its own CREDS.
func (a *Agent) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReaderSize(in, 64<<10)
	start := time.Now()
	if _, err := out.Write(AppendCreds(a.out[:0], a.flags)); err != nil {
		return fmt.Errorf("%w: sending credentials: %w", ErrHandshake, err)
	}
	var buf []byte
	buf, h, err := ReadPDU(r, buf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if h.Type != TypeCreds {
		return fmt.Errorf("%w: got %s, want CREDS", ErrHandshake, h.Type)
	}
	creds, err := DecodeCreds(buf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	version := 0
	for _, c := range creds {
		if c.Type == credVersion {
			version = int(c.Version)
		}
	}
	a.log.Info("pmcd handshake done", "pmcd_pid", h.From, "version", version, "took", time.Since(start).Round(time.Microsecond))
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		buf, h, err = ReadPDU(r, buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		reply := a.Handle(h, buf)
		if reply == nil {
			continue
		}
		if _, err := out.Write(reply); err != nil {
			return fmt.Errorf("replying to %s: %w", h.Type, err)
		}
	}
}

// Handle answers one PDU (after the handshake). It returns the reply, or
// nil for the PDUs pmcd sends without waiting for one: PROFILE, ATTR,
// ERROR (a client context closing), CONTROL_REQ and CREDS. Everything else
// gets its reply or an ERROR PDU. The returned slice is reused by the next
// call.
func (a *Agent) Handle(h Header, b []byte) []byte {
	switch h.Type {
	case TypeProfile:
		p, err := DecodeProfile(b)
		if err != nil {
			a.log.Warn("bad PROFILE from pmcd, ignored", "err", err)
			return nil
		}
		a.profile = p
		return nil
	case TypeAttr:
		attr, val, err := DecodeAttr(b)
		if err != nil {
			a.log.Warn("bad ATTR from pmcd, ignored", "err", err)
			return nil
		}
		a.attr(h.From, attr, val)
		return nil
	case TypeError:
		code, err := DecodeError(b)
		if err == nil && code == ErrNotConn {
			delete(a.attrs, h.From)
		} else {
			a.log.Warn("unexpected ERROR PDU from pmcd", "code", code, "err", err)
		}
		return nil
	case TypeControlReq, TypeCreds:
		return nil
	case TypeFetch:
		_, pmids, err := DecodeFetch(b)
		if err != nil {
			return a.fail(h, err)
		}
		return a.fetch(pmids)
	case TypeDescReq:
		pmid, err := DecodeDescReq(b)
		if err != nil {
			return a.fail(h, err)
		}
		m := metricByPMID(pmid)
		if m == nil {
			a.out = AppendError(a.out[:0], ErrPMID)
			return a.out
		}
		a.out = AppendDesc(a.out[:0], m.Desc)
		return a.out
	case TypeInstanceReq:
		req, err := DecodeInstanceReq(b)
		if err != nil {
			return a.fail(h, err)
		}
		return a.instance(req)
	case TypeTextReq:
		ident, typ, err := DecodeTextReq(b)
		if err != nil {
			return a.fail(h, err)
		}
		return a.text(ident, typ)
	case TypeLabelReq:
		ident, typ, err := DecodeLabelReq(b)
		if err != nil {
			return a.fail(h, err)
		}
		return a.label(ident, typ)
	case TypeResult: // a store: nothing here is writable
		a.out = AppendError(a.out[:0], ErrPermission)
		return a.out
	case TypePMNSNames, TypePMNSChild, TypePMNSTraverse:
		// Only dynamic-namespace agents are asked; ours is static.
		a.out = AppendError(a.out[:0], ErrName)
		return a.out
	case TypePMNSIDs:
		a.out = AppendError(a.out[:0], ErrPMID)
		return a.out
	}
	a.log.Warn("unexpected PDU from pmcd, answered with an error", "type", h.Type, "length", h.Len)
	a.out = AppendError(a.out[:0], ErrIPC)
	return a.out
}

func (a *Agent) fail(h Header, err error) []byte {
	a.log.Warn("malformed request from pmcd", "type", h.Type, "length", h.Len, "err", err)
	a.out = AppendError(a.out[:0], ErrIPC)
	return a.out
}

func (a *Agent) attr(ctx, attr int32, val []byte) {
	for i, c := range val { // pmcd sends C strings
		if c == 0 {
			val = val[:i]
			break
		}
	}
	m := a.attrs[ctx]
	if m == nil {
		m = map[int32]string{}
		a.attrs[ctx] = m
	}
	m[attr] = string(val)
	if attr == AttrContainer {
		a.log.Debug("pmcd client asks for a container", "ctx", ctx, "container", string(val))
	}
}

// refresh brings the instance domain up to date with the index. It never
// waits: the resolver answers from memory.
func (a *Agent) refresh() {
	box := a.src.Load()
	if box == nil {
		return
	}
	gen, list := box.s.Listing()
	a.inst.update(gen, list)
}

func (a *Agent) fetch(pmids []uint32) []byte {
	a.refresh()
	sets := make([]ValueSet, len(pmids))
	for i, id := range pmids {
		sets[i].PMID = id
		m := metricByPMID(id)
		if m == nil {
			sets[i].Status = ErrPMID
			continue
		}
		sets[i].Values = make([]Value, 0, len(a.inst.list))
		for _, in := range a.inst.list {
			if !a.profile.In(ContainersInDom, in.num) {
				continue
			}
			v, ok := m.value(&in.c)
			if !ok {
				continue
			}
			v.Inst = in.num
			sets[i].Values = append(sets[i].Values, v)
		}
	}
	a.out = AppendResult(a.out[:0], sets)
	return a.out
}

func (a *Agent) instance(req InstanceReq) []byte {
	if req.InDom != ContainersInDom {
		a.out = AppendError(a.out[:0], ErrInDom)
		return a.out
	}
	a.refresh()
	switch {
	case req.Inst == InstNull && req.Name == "":
		insts := make([]Instance, len(a.inst.list))
		for i, in := range a.inst.list {
			insts[i] = Instance{Inst: in.num, Name: in.name}
		}
		a.out = AppendInstance(a.out[:0], ContainersInDom, insts)
	case req.Inst == InstNull:
		in := a.inst.byName[req.Name]
		if in == nil {
			a.out = AppendError(a.out[:0], ErrInst)
			break
		}
		a.out = AppendInstance(a.out[:0], ContainersInDom, []Instance{{Inst: in.num}})
	default:
		in := a.inst.byNum(req.Inst)
		if in == nil {
			a.out = AppendError(a.out[:0], ErrInst)
			break
		}
		a.out = AppendInstance(a.out[:0], ContainersInDom, []Instance{{Inst: InstNull, Name: in.name}})
	}
	return a.out
}

func (a *Agent) text(ident uint32, typ int32) []byte {
	var one, help string
	switch {
	case typ&TextPMID != 0:
		m := metricByPMID(ident)
		if m == nil {
			a.out = AppendError(a.out[:0], ErrText)
			return a.out
		}
		one, help = m.OneLine, m.Help
	case typ&TextInDom != 0 && ident == ContainersInDom:
		one, help = InDomOneLine, InDomHelp
	default:
		a.out = AppendError(a.out[:0], ErrText)
		return a.out
	}
	if typ&TextHelp != 0 {
		one = help
	}
	a.out = AppendText(a.out[:0], ident, one)
	return a.out
}

// The domain's one label, as libpcp_pmda gives every agent: its name.
var domainLabels = []LabelSet{{
	Inst: InstNull, JSON: `{"agent":"root"}`,
	Labels: []Label{{Name: 2, NameLen: 5, Flags: LabelDomain, Value: 9, ValueLen: 6}},
}}

func (a *Agent) label(ident uint32, typ int32) []byte {
	switch typ &^ (labelCompound | labelOptional) {
	case LabelDomain:
		a.out = AppendLabel(a.out[:0], ident, typ, domainLabels)
	case LabelContext, LabelInDom, LabelCluster, LabelItem, LabelInstances:
		// No labels of our own (pmdaroot has none either).
		a.out = AppendLabel(a.out[:0], ident, typ, nil)
	default:
		a.out = AppendError(a.out[:0], ErrType)
	}
	return a.out
}
