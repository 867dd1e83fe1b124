// Package rootd is the daemon: it serves the pmdaroot protocol on a unix
// socket, answering container questions through a Resolver and starting,
// reaping and stopping agent processes through a Supervisor.
package rootd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"

	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/internal/version"
	"github.com/rootd-project/rootd/wire"
	"golang.org/x/sys/unix"
)

// Resolver answers container questions by name. Each call returns the
// container's init PID alongside the answer, as the replies carry both.
type Resolver interface {
	PID(ctx context.Context, name string) (int, error)
	CgroupPath(ctx context.Context, name string) (pid int, path string, err error)
	Hostname(ctx context.Context, name string) (pid int, hostname string, err error)
}

// Config configures a Server.
type Config struct {
	Log      *slog.Logger
	Resolver Resolver
	// Processes starts and stops agents; nil refuses every start request.
	Processes *Supervisor
	Access    Access
	// RequestTimeout bounds one container lookup (default 5s), so a slow
	// engine costs its own client time, never other clients'.
	RequestTimeout time.Duration
	// ReadTimeout bounds how long the rest of a PDU may take once its first
	// byte has arrived (default 5s). Idle clients are never timed out: PCP's
	// collectors connect once and keep the connection for their lifetime.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one reply (default 5s).
	WriteTimeout time.Duration
	// HostnameOfPID serves the by-PID HOSTNAME form (default procfs.Hostname).
	HostnameOfPID func(ctx context.Context, pid int) (string, error)
	// MaxConnections bounds the clients connected at once (default
	// DefaultMaxConnections). A connection beyond it is closed at once,
	// before the greeting. Refused peers never hold a slot for longer than
	// it takes to read their credentials.
	MaxConnections int
	// View answers LIST, DESCRIBE and STATUS; when nil, Resolver does if
	// it is a Viewer. Without one the server does not announce
	// wire.FeatureView and refuses those requests with EOPNOTSUPP.
	View Viewer
	// ViewConcurrency bounds the view replies in progress at once
	// (default DefaultViewConcurrency). One of the slots is kept for root
	// (uid 0), so 1 leaves the view requests to root alone; a uid other
	// than root holds at most one slot at a time.
	ViewConcurrency int
	// Version and Commit are what STATUS reports (default: this build's);
	// Started is when the daemon started (default: when NewServer ran).
	Version, Commit string
	Started         time.Time

	// now is the clock of log rate limiting; tests replace it.
	now func() time.Time
	// peerHook, set by tests, changes the credentials read from a
	// connection (to play a non-root peer without being one).
	peerHook func(conn *net.UnixConn, p Peer) Peer
}

// DefaultMaxConnections is far above what a host needs (pmcd holds two
// connections and each container-aware agent one: tens at most) and low
// enough that the memory it allows stays small: each served connection
// holds three wire.MaxPDUSize buffers (read buffer, request, reply: about
// 13 KiB) plus its goroutine's stack, about 21 KiB in all as measured, so
// 1024 connections cost about 21 MiB. Descriptors are not the limit: Go
// raises the soft RLIMIT_NOFILE to the hard one (524288 under systemd).
const DefaultMaxConnections = 1024

// Server serves the pmdaroot protocol.
type Server struct {
	cfg     Config
	log     *slog.Logger
	closing atomic.Bool
	limit   *logLimiter
	stats   serverStats

	view      Viewer
	viewSlots *viewSlots // one per view reply in progress
	features  int32      // announced in INFO

	mu       sync.Mutex
	conns    map[*net.UnixConn]struct{}
	sessions map[*session]struct{} // served clients, for Stats
	wg       sync.WaitGroup
}

// NewServer returns a Server; call Serve to run it.
func NewServer(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.HostnameOfPID == nil {
		cfg.HostnameOfPID = procfs.Hostname
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.ViewConcurrency <= 0 {
		cfg.ViewConcurrency = DefaultViewConcurrency
	}
	if cfg.Version == "" {
		v := version.Get()
		cfg.Version, cfg.Commit = v.Version, v.Commit
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	s := &Server{cfg: cfg, log: cfg.Log, limit: newLogLimiter(cfg.now), conns: map[*net.UnixConn]struct{}{}, sessions: map[*session]struct{}{}}
	s.view = cfg.View
	if v, ok := cfg.Resolver.(Viewer); ok && s.view == nil {
		s.view = v
	}
	s.viewSlots = newViewSlots(cfg.ViewConcurrency)
	s.features = wire.AllFeatures
	if s.view != nil {
		s.features |= wire.FeatureView
	}
	return s
}

// Serve accepts clients on ln until ctx is cancelled, then stops accepting,
// lets every request in progress finish, closes the clients and returns nil.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() {
		s.closing.Store(true)
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			// Wakes connections idle between requests; one mid-request
			// finishes and then sees closing.
			c.SetReadDeadline(time.Now())
		}
		s.mu.Unlock()
	})
	defer stop()
	sweepDone := make(chan struct{})
	defer close(sweepDone)
	go s.reportSuppressedEvery(logWindow, sweepDone)
	var tempDelay time.Duration
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if s.closing.Load() {
				s.wg.Wait()
				if s.cfg.Processes != nil {
					s.cfg.Processes.LogUncollected()
				}
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) {
				// Out of descriptors: back off instead of spinning, the
				// clients already connected keep being served.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.log.Error("accept", "err", err, "retry_in", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			s.wg.Wait()
			return err
		}
		tempDelay = 0
		s.stats.accepted.Add(1)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		if len(s.conns) >= s.cfg.MaxConnections {
			s.mu.Unlock()
			s.refuseOverLimit(conn)
			continue
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
			}()
			s.serveConn(ctx, conn)
		}()
	}
}

// refuseOverLimit closes a connection accepted beyond MaxConnections,
// before the greeting, and logs who it was (rate-limited).
func (s *Server) refuseOverLimit(conn *net.UnixConn) {
	s.stats.refusedLimit.Add(1)
	peer, err := peerOf(conn)
	defer conn.Close()
	uid := peer.UID
	if err != nil {
		uid = noUID
	}
	s.logLimited(s.log, uid, slog.LevelWarn, "refusing client: too many connections",
		"limit", s.cfg.MaxConnections, "peer_pid", peer.PID, "peer_uid", peer.UID)
}

// logLimited logs msg unless the same message for the same uid has been
// logged too often lately (see logLimiter); the first line let through
// after a suppression carries the count of lines suppressed.
func (s *Server) logLimited(log *slog.Logger, uid uint32, level slog.Level, msg string, args ...any) {
	ok, suppressed := s.limit.allow(limitKey{uid: uid, msg: msg})
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}

// reportSuppressedEvery reports lines suppressed for keys that went quiet,
// every period until done is closed.
func (s *Server) reportSuppressedEvery(period time.Duration, done <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.reportSuppressed()
		case <-done:
			return
		}
	}
}

// reportSuppressed logs one line per key whose lines were suppressed and
// whose window has ended with no line let through since.
func (s *Server) reportSuppressed() {
	for _, r := range s.limit.sweep() {
		s.log.Warn("suppressed repeated log lines", "msg", r.key.msg, "peer_uid", r.key.uid, "count", r.count)
	}
}

// SuppressedLogLines is the number of log lines rate limiting has
// suppressed since the server was made.
func (s *Server) SuppressedLogLines() uint64 { return s.limit.Total() }

// session is one client's connection state.
type session struct {
	srv   *Server
	conn  *net.UnixConn
	uid   uint32 // the peer's, for rate-limited logging
	log   *slog.Logger
	peer  Peer
	owner Owner // the client process: it owns the agents it starts
	in    *bufio.Reader
	buf   []byte
	reply []byte

	// The fast path of send: raw writes with a callback made once per
	// session, so that sending allocates nothing.
	raw       syscall.RawConn
	writeOnce func(fd uintptr) bool
	pending   []byte
	written   int
	writeErr  error

	// result is how the request being handled ended, for the counters.
	result Result
	stats  requestStats
}

// bufferedWhole reports whether the next PDU can be read without reading
// the socket: its header and all the bytes the header announces are
// buffered (or the header is invalid, which ReadPDU reports at once).
func (ss *session) bufferedWhole() bool {
	n := ss.in.Buffered()
	if n < wire.HeaderSize {
		return false
	}
	b, _ := ss.in.Peek(wire.HeaderSize)
	h, err := wire.ParseHeader(b)
	return err != nil || int(h.Length) <= n
}

func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn) {
	peer, err := peerOf(conn)
	if err != nil {
		s.stats.refusedCreds.Add(1)
		s.logLimited(s.log, noUID, slog.LevelWarn, "cannot read peer credentials, closing", "err", err)
		return
	}
	if s.cfg.peerHook != nil {
		peer = s.cfg.peerHook(conn, peer)
	}
	log := s.log.With("peer_pid", peer.PID, "peer_uid", peer.UID)
	if !s.cfg.Access.Allows(peer) {
		s.stats.refusedCreds.Add(1)
		s.logLimited(log, peer.UID, slog.LevelWarn, "refusing client: uid not allowed", "peer_gid", peer.GID)
		return
	}
	ss := &session{
		srv: s, conn: conn, log: log, peer: peer, owner: ownerOf(peer), uid: peer.UID,
		in:    bufio.NewReaderSize(conn, wire.MaxPDUSize),
		buf:   make([]byte, wire.MaxPDUSize),
		reply: make([]byte, 0, wire.MaxPDUSize),
	}
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		ss.stats.fold(&s.stats.ended)
		s.mu.Unlock()
	}()
	if raw, err := conn.SyscallConn(); err == nil {
		ss.raw = raw
		ss.writeOnce = func(fd uintptr) bool {
			ss.written, ss.writeErr = unix.Write(int(fd), ss.pending)
			return true // one attempt; send falls back to a blocking write
		}
	}
	if err := ss.send(wire.AppendInfo(ss.reply[:0], wire.Info{Features: s.features}), nil); err != nil {
		log.Debug("client left before INFO", "err", err)
		return
	}
	log.Debug("client connected")
	// A request in progress finishes even when shutdown begins.
	reqCtx := context.WithoutCancel(ctx)
	for !s.closing.Load() {
		// Wait for a request with no deadline, then give the rest of it a
		// bounded time: a client that stalls mid-PDU is dropped, an idle one
		// is not.
		if _, err := ss.in.Peek(1); err != nil {
			if !errors.Is(err, io.EOF) && !s.closing.Load() {
				log.Debug("client read", "err", err)
			}
			return
		}
		// A PDU that is already buffered whole (nearly always: PCP's
		// clients send each with one send) needs no deadline, and arming
		// a timer per request would cost more than the request.
		whole := ss.bufferedWhole()
		if !whole {
			conn.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
		}
		hdr, pdu, err := wire.ReadPDU(ss.in, ss.buf)
		if !whole {
			conn.SetReadDeadline(time.Time{})
		}
		if err != nil {
			s.stats.protocolErrors.Add(1)
			ss.warn("bad protocol exchange, closing client", "type", hdr.Type, "err", err)
			return
		}
		if !ss.handle(reqCtx, hdr, pdu) {
			return
		}
	}
}

// send writes one whole PDU, with descriptors if rights is not nil, in a
// single write: PCP's client reads each reply with one recv.
func (ss *session) send(pdu, rights []byte) error {
	if rights == nil && ss.raw != nil {
		// First one non-blocking write: it succeeds whenever the socket
		// buffer has room, which is always unless the client stopped
		// reading, and it needs no deadline timer.
		ss.pending = pdu
		ss.raw.Write(ss.writeOnce)
		n, err := ss.written, ss.writeErr
		ss.pending = nil
		if err == nil && n == len(pdu) {
			return nil
		}
		if err != nil && err != syscall.EAGAIN {
			return err
		}
		pdu = pdu[max(n, 0):]
	}
	ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
	defer ss.conn.SetWriteDeadline(time.Time{})
	if rights != nil {
		n, _, err := ss.conn.WriteMsgUnix(pdu, rights, nil)
		if err == nil && n != len(pdu) {
			err = io.ErrShortWrite
		}
		return err
	}
	_, err := ss.conn.Write(pdu)
	return err
}

// handle answers one request and counts it; false closes the client.
func (ss *session) handle(ctx context.Context, hdr wire.Header, pdu []byte) bool {
	// One clock read before (shared with the lookup's deadline) and one
	// after: the only cost of the latency histogram.
	start := time.Now()
	t := requestTypeOf(hdr.Type)
	var keep bool
	switch t {
	case RequestHostname, RequestProcessID, RequestCgroupName:
		keep = ss.container(ctx, start, hdr, pdu)
	case RequestStart:
		keep = ss.start(hdr, pdu)
	case RequestStop:
		keep = ss.stop(hdr, pdu)
	case RequestList, RequestDescribe, RequestStatus:
		keep = ss.view(ctx, start, hdr, pdu)
	default:
		ss.srv.stats.protocolErrors.Add(1)
		ss.result = ResultInvalid
		ss.warn("bad protocol exchange, closing client", "type", hdr.Type)
	}
	ss.stats.observe(t, ss.result, time.Since(start))
	return keep
}

// warn logs a warning a client can provoke at will, rate-limited by its uid.
func (ss *session) warn(msg string, args ...any) {
	ss.srv.logLimited(ss.log, ss.uid, slog.LevelWarn, msg, args...)
}

func (ss *session) replyContainer(t wire.Type, status int32, pid int, name []byte) bool {
	ss.result = resultOfStatus(status)
	out, err := wire.AppendContainer(ss.reply[:0], wire.Container{Type: t, Status: status, PID: int32(pid), Name: name})
	if err != nil {
		ss.log.Error("reply does not fit the protocol", "type", t, "err", err)
		out, _ = wire.AppendContainer(ss.reply[:0], wire.Container{Type: t, Status: -int32(syscall.E2BIG)})
	}
	if err := ss.send(out, nil); err != nil {
		ss.log.Debug("client left before its reply", "type", t, "err", err)
		return false
	}
	return true
}

func (ss *session) container(ctx context.Context, start time.Time, hdr wire.Header, pdu []byte) bool {
	replyType, _ := hdr.Type.Reply()
	req, err := wire.DecodeContainer(pdu)
	if err == nil && req.Status != 0 {
		err = errors.New("request carries a status")
	}
	if err == nil && len(req.Name) == 0 && hdr.Type != wire.TypeHostnameReq {
		err = errors.New("empty container name")
	}
	if err != nil {
		// The PDU was framed by its header, so the stream is still in step:
		// answer the error instead of dropping the client.
		ss.warn("invalid request", "type", hdr.Type, "err", err)
		return ss.replyContainer(replyType, -int32(syscall.EINVAL), 0, nil)
	}
	lazy := newLazyDeadline(ctx, start.Add(ss.srv.cfg.RequestTimeout))
	defer lazy.release()
	ctx = lazy

	if len(req.Name) == 0 {
		name, err := ss.srv.cfg.HostnameOfPID(ctx, int(req.PID))
		if err != nil {
			ss.srv.logLimited(ss.log, ss.uid, slog.LevelInfo, "hostname by pid failed", "pid", req.PID, "err", err)
			return ss.replyContainer(replyType, statusOf(err), 0, nil)
		}
		return ss.replyContainer(replyType, 0, int(req.PID), []byte(name))
	}
	r := ss.srv.cfg.Resolver
	if r == nil {
		return ss.replyContainer(replyType, wire.StatusNoContainer, 0, nil)
	}
	name := string(req.Name)
	var (
		pid    int
		answer string
	)
	switch hdr.Type {
	case wire.TypeProcessIDReq:
		pid, err = r.PID(ctx, name)
	case wire.TypeCgroupNameReq:
		pid, answer, err = r.CgroupPath(ctx, name)
	default:
		pid, answer, err = r.Hostname(ctx, name)
	}
	if err != nil {
		ss.logLookupError(hdr.Type, name, err)
		return ss.replyContainer(replyType, statusOf(err), 0, nil)
	}
	return ss.replyContainer(replyType, 0, pid, []byte(answer))
}

func (ss *session) logLookupError(t wire.Type, name string, err error) {
	if errorsIsAny(err, errNotFoundLike...) {
		ss.log.Debug("lookup failed", "type", t, "name", name, "err", err)
		return
	}
	ss.srv.logLimited(ss.log, ss.uid, slog.LevelInfo, "lookup failed", "type", t, "name", name, "err", err)
}

func (ss *session) start(hdr wire.Header, pdu []byte) bool {
	req, err := wire.DecodeStart(pdu)
	label := []byte(nil)
	if err == nil {
		label = req.Label
	}
	fail := func(reason string, err error) bool {
		// A refusal by the exec policy is -EPERM, and the policy has logged
		// it once per client and command. Any other failure is
		// PM_ERR_GENERIC, as the reference answers. pmcd treats any
		// negative status alike: it starts the agent itself, as its own
		// user.
		status := int32(wire.StatusGeneric)
		ss.result = ResultError
		if reason == "invalid request" || reason == "bad arguments" {
			ss.result = ResultInvalid
		}
		if errors.Is(err, ErrNotAllowed) {
			status = -int32(syscall.EPERM)
		} else {
			ss.warn("agent not started", "reason", reason, "label", string(label), "err", err)
		}
		out, _ := wire.AppendStart(ss.reply[:0], wire.Start{Type: wire.TypeStart, Status: status, IPCType: req.IPCType, Label: label})
		return ss.send(out, emptyRights()) == nil
	}
	if err != nil {
		return fail("invalid request", err)
	}
	if req.Status != 0 {
		return fail("invalid request", errors.New("request carries a status"))
	}
	procs := ss.srv.cfg.Processes
	if procs == nil {
		return fail("process control disabled", nil)
	}
	argv, err := wire.SplitArgs(string(req.Args))
	if err != nil {
		return fail("bad arguments", err)
	}
	pipe := req.IPCType == wire.IPCPipe
	child, err := procs.Start(StartRequest{Peer: ss.peer, Owner: ss.owner, Label: string(req.Label), Argv: argv, Pipe: pipe})
	if err != nil {
		return fail("start failed", err)
	}
	rights := emptyRights()
	if pipe {
		rights = unix.UnixRights(int(child.ToChild.Fd()), int(child.FromChild.Fd()))
	}
	out, _ := wire.AppendStart(ss.reply[:0], wire.Start{Type: wire.TypeStart, PID: int32(child.PID), IPCType: req.IPCType, Label: req.Label})
	ss.result = ResultOK
	err = ss.send(out, rights)
	if child.ToChild != nil {
		child.ToChild.Close()
		child.FromChild.Close()
	}
	if err != nil {
		// Nobody holds this child's pid or pipes: stop it rather than leave
		// an orphan agent running as root.
		ss.log.Warn("client left before STARTPMDA reply, killing the new agent", "pid", child.PID, "err", err)
		procs.kill(child.PID)
		return false
	}
	return true
}

// emptyRights is the control message the reference sends when no
// descriptors travel: an SCM_RIGHTS header of length CMSG_LEN(0).
func emptyRights() []byte { return unix.UnixRights() }

func (ss *session) stop(hdr wire.Header, pdu []byte) bool {
	req, err := wire.DecodeStop(pdu)
	if err == nil && req.Status != 0 {
		err = errors.New("request carries a status")
	}
	reply := wire.Stop{Type: wire.TypeStop, PID: req.PID, Force: req.Force}
	procs := ss.srv.cfg.Processes
	switch {
	case err != nil:
		ss.warn("invalid request", "type", hdr.Type, "err", err)
		reply.Status = -int32(syscall.EINVAL)
	case procs == nil:
		reply.Status = -int32(syscall.EPERM)
	case req.Force != 0 || req.PID >= 1:
		sig := syscall.SIGTERM
		if req.Force != 0 {
			sig = syscall.SIGKILL
		}
		if err := procs.Signal(ss.owner, int(req.PID), sig); err != nil {
			ss.warn("refused to signal", "pid", req.PID, "signal", sig, "owner", ss.owner.String(), "err", err)
			reply.Status = statusOf(err)
		} else {
			ss.log.Info("signalled agent", "pid", req.PID, "signal", sig)
		}
	default:
		reply.PID = 0
		if e, ok := procs.Collect(ss.owner); ok {
			reply.PID, reply.Code = int32(e.PID), int32(e.Status)
		}
	}
	switch reply.Status {
	case 0:
		ss.result = ResultOK
	case -int32(syscall.EINVAL):
		ss.result = ResultInvalid
	default:
		ss.result = ResultError
	}
	out, _ := wire.AppendStop(ss.reply[:0], reply)
	return ss.send(out, nil) == nil
}

// Processes returns the Supervisor of Config.Processes (nil if none).
func (s *Server) Processes() *Supervisor { return s.cfg.Processes }

// Clients returns the number of clients connected now.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
