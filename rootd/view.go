package rootd

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/wire"
)

// Viewer is the index as the view requests (LIST, DESCRIBE, STATUS) show
// it; *resolver.Resolver is one. Every method answers from the index the
// lookups use, so an operator sees exactly what PCP's clients get.
type Viewer interface {
	// Listing is every container once, with its cgroup, as LIST sends it.
	Listing() (gen uint64, out []resolver.Listed)
	// Describe and DescribePID answer DESCRIBE by name and by host PID.
	Describe(ctx context.Context, query string) (resolver.Described, error)
	DescribePID(ctx context.Context, pid int) (resolver.Described, error)
	// Status and Containers answer STATUS: per-engine health and counts,
	// and the distinct containers for the total.
	Status() []resolver.EngineStatus
	Containers() []engine.Container
	// Ready is closed once every engine has been listed.
	Ready() <-chan struct{}
}

// DefaultViewConcurrency bounds the view replies being built or sent at
// once, server-wide. A listing's document is held whole while it is sent
// (a few MiB for 10,000 containers), so without a bound the clients an
// allowed peer may open (MaxConnections) could each hold one. A slot is
// held until the whole reply is written (up to WriteTimeout), so the slots
// are shared out (see viewSlots): one is root's alone, and a uid other than
// root holds at most one at a time. Lookups never wait for these slots.
const DefaultViewConcurrency = 4

// viewSlots hands out the view slots. Without the per-uid bound and the
// slot kept for root, one allowed user opening a few connections that send
// LIST and never read the reply would keep every slot busy, and root's
// rootctl ls/status would get EBUSY for as long as that went on.
type viewSlots struct {
	shared chan struct{} // the slots anyone may take: n-1
	root   chan struct{} // the slot only root (uid 0) may take
	mu     sync.Mutex
	byUID  map[uint32]*uidTurn // non-root uids with a view request under way
}

// uidTurn is one uid's single slot token, and how many of its requests
// hold or wait for it.
type uidTurn struct {
	token chan struct{}
	refs  int
}

func newViewSlots(n int) *viewSlots {
	return &viewSlots{shared: make(chan struct{}, n-1), root: make(chan struct{}, 1), byUID: map[uint32]*uidTurn{}}
}

// inUse is the number of slots held.
func (v *viewSlots) inUse() int { return len(v.shared) + len(v.root) }

// acquire takes a slot for a request from uid, waiting until done is
// closed at most; it returns the function that gives the slot back, or nil
// when none came free in time. Root may take any slot; another uid takes
// its turn among its own requests first, then a shared slot.
func (v *viewSlots) acquire(uid uint32, done <-chan struct{}) (release func()) {
	if uid == 0 {
		select {
		case v.shared <- struct{}{}:
			return func() { <-v.shared }
		case v.root <- struct{}{}:
			return func() { <-v.root }
		default:
		}
		select {
		case v.shared <- struct{}{}:
			return func() { <-v.shared }
		case v.root <- struct{}{}:
			return func() { <-v.root }
		case <-done:
			return nil
		}
	}
	v.mu.Lock()
	turn := v.byUID[uid]
	if turn == nil {
		turn = &uidTurn{token: make(chan struct{}, 1)}
		v.byUID[uid] = turn
	}
	turn.refs++
	v.mu.Unlock()
	leave := func() {
		v.mu.Lock()
		if turn.refs--; turn.refs == 0 {
			delete(v.byUID, uid)
		}
		v.mu.Unlock()
	}
	select {
	case turn.token <- struct{}{}:
	case <-done:
		leave()
		return nil
	}
	select {
	case v.shared <- struct{}{}:
	case <-done:
		<-turn.token
		leave()
		return nil
	}
	return func() {
		<-v.shared
		<-turn.token
		leave()
	}
}

// publicLabels are the labels every allowed peer sees: the Kubernetes
// identity, which such a peer can already test for with
// NAMESPACE/POD/CONTAINER queries. Other labels go to root only (see
// docs/security.md): they are whatever the container's creator wrote, and
// pmdaroot never exported them to anyone.
var publicLabels = [...]string{engine.LabelPodNamespace, engine.LabelPodName, engine.LabelContainerName, engine.LabelPodUID}

// containerInfo is c as a peer may see it.
func containerInfo(c engine.Container, cgroup, hostname string, allLabels bool) wire.ContainerInfo {
	info := wire.ContainerInfo{
		Engine: c.Engine, ID: c.ID, Names: c.Names, State: string(c.State), PID: c.PID,
		Namespace: c.Namespace, Cgroup: cgroup, Hostname: hostname,
	}
	switch {
	case len(c.Labels) == 0:
	case allLabels:
		info.Labels = c.Labels // marshalled before the index can change it: it is never mutated
	default:
		for _, k := range publicLabels {
			if v, ok := c.Labels[k]; ok {
				if info.Labels == nil {
					info.Labels = map[string]string{}
				}
				info.Labels[k] = v
			}
		}
		info.LabelsRedacted = len(info.Labels) < len(c.Labels)
	}
	return info
}

// seesAllLabels reports whether the peer gets every label: root only.
func (ss *session) seesAllLabels() bool { return ss.peer.UID == 0 }

// view answers LIST, DESCRIBE and STATUS.
func (ss *session) view(ctx context.Context, start time.Time, hdr wire.Header, pdu []byte) bool {
	replyType, _ := hdr.Type.Reply()
	req, err := wire.DecodeViewRequest(pdu)
	if err != nil {
		// Framed by its header, so the stream is still in step.
		ss.warn("invalid request", "type", hdr.Type, "err", err)
		return ss.replyView(replyType, -int32(syscall.EINVAL), wire.ViewDocument{Error: err.Error()})
	}
	v := ss.srv.view
	if v == nil {
		return ss.replyView(replyType, -int32(syscall.EOPNOTSUPP), wire.ViewDocument{Error: "this server has no container index to show"})
	}
	lazy := newLazyDeadline(ctx, start.Add(ss.srv.cfg.RequestTimeout))
	defer lazy.release()
	release := ss.srv.viewSlots.acquire(ss.peer.UID, lazy.Done())
	if release == nil {
		return ss.replyView(replyType, -int32(syscall.EBUSY), wire.ViewDocument{Error: "too many view requests at once; try again"})
	}
	defer release()

	var (
		status int32
		doc    wire.ViewDocument
	)
	switch req.Type {
	case wire.TypeListReq:
		_, listed := v.Listing()
		doc.Containers = make([]wire.ContainerInfo, len(listed))
		for i, l := range listed {
			doc.Containers[i] = containerInfo(l.Container, l.Cgroup, "", ss.seesAllLabels())
		}
	case wire.TypeStatusReq:
		doc.Status = ss.srv.viewStatus(v)
	case wire.TypeDescribeReq:
		status, doc = ss.describe(lazy, v, req)
	}
	return ss.replyView(replyType, status, doc)
}

// describe answers DESCRIBE: the container, or the candidates of an
// ambiguous name, or the container without a process alongside ESRCH.
func (ss *session) describe(ctx context.Context, v Viewer, req wire.ViewRequest) (int32, wire.ViewDocument) {
	var (
		d   resolver.Described
		err error
	)
	name := string(req.Name)
	if name != "" {
		d, err = v.Describe(ctx, name)
	} else {
		d, err = v.DescribePID(ctx, int(req.PID))
	}
	var doc wire.ViewDocument
	info := containerInfo(d.Container, d.Cgroup, d.Hostname, ss.seesAllLabels())
	if err == nil {
		doc.Container = &info
		return 0, doc
	}
	ss.logLookupError(req.Type, name, err)
	status := statusOf(err)
	doc.Error = err.Error()
	var amb *engine.AmbiguousError
	switch {
	case errors.As(err, &amb) && status == -int32(syscall.ENOTUNIQ):
		for _, c := range amb.Candidates {
			doc.Candidates = append(doc.Candidates, containerInfo(c, "", "", ss.seesAllLabels()))
		}
	case status == -int32(syscall.ESRCH) && d.ID != "":
		doc.Container = &info
	}
	return status, doc
}

// viewStatus is the daemon's state for STATUS.
func (s *Server) viewStatus(v Viewer) *wire.Status {
	st := &wire.Status{
		Version: s.cfg.Version, Commit: s.cfg.Commit, Started: s.cfg.Started,
		Containers: len(v.Containers()), Clients: s.Clients(),
	}
	select {
	case <-v.Ready():
		// The socket is bound: this request came through it.
		st.Ready = true
	default:
	}
	for _, e := range v.Status() {
		st.Engines = append(st.Engines, EngineStatus(e))
	}
	return st
}

// EngineStatus is an engine's status as STATUS sends it; rootctl's
// in-process mode shows the same.
func EngineStatus(e resolver.EngineStatus) wire.EngineStatus {
	es := wire.EngineStatus{
		Name: e.Name, Health: e.Health, LastError: e.LastErrorTime, Containers: e.Containers,
		LastRefresh: e.LastRefresh, Lists: e.Lists, LastList: e.LastListTime,
	}
	if e.Err != nil {
		es.Error = e.Err.Error()
	}
	if len(e.States) > 0 {
		es.States = make(map[string]int, len(e.States))
		for k, n := range e.States {
			es.States[string(k)] = n
		}
	}
	return es
}

// replyView sends a view reply: the document, versioned, in as many chunks
// as it needs. The whole reply must be taken within WriteTimeout (a local
// reader takes a 10,000-container listing in milliseconds), so a client
// that stops reading holds its slot no longer than that; a client that
// misses it is closed. Chunks may reach the socket in several writes when
// its buffer is full: only rootd's own clients send view requests, and they
// frame replies by their headers.
func (ss *session) replyView(t wire.Type, status int32, doc wire.ViewDocument) bool {
	doc.Version = wire.ViewVersion
	b, err := json.Marshal(doc)
	if err == nil && len(b) > wire.MaxViewDocument {
		err = errors.New("document too large")
		status = -int32(syscall.E2BIG)
	}
	if err != nil {
		ss.log.Error("view reply does not fit the protocol", "type", t, "bytes", len(b), "err", err)
		if status == 0 {
			status = wire.StatusGeneric
		}
		b, _ = json.Marshal(wire.ViewDocument{Version: wire.ViewVersion, Error: err.Error()})
	}
	ss.result = resultOfStatus(status)
	ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
	defer ss.conn.SetWriteDeadline(time.Time{})
	err = wire.ViewChunks(t, status, b, func(v wire.View) error {
		out, err := wire.AppendView(ss.reply[:0], v)
		if err == nil {
			_, err = ss.conn.Write(out)
		}
		return err
	})
	if err != nil {
		ss.log.Debug("client did not take its view reply", "type", t, "bytes", len(b), "err", err)
		return false
	}
	return true
}

// viewSlotsInUse is the number of view slots held.
func (s *Server) viewSlotsInUse() int { return s.viewSlots.inUse() }
