package main

// PMDA mode: rootd started by pmcd as its root agent (domain 1), with
// pmcd's pipe on standard input and output. The wiring lives here so that
// main.go only calls a few hooks.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rootd-project/rootd/internal/logfile"
	"github.com/rootd-project/rootd/internal/pcpconf"
	"github.com/rootd-project/rootd/pmda"
	"github.com/rootd-project/rootd/rootd"
)

// pmdaMode is the state of --pmda; every method is a no-op without it.
type pmdaMode struct {
	on    *bool
	agent *pmda.Agent
	log   *slog.Logger
	done  chan error
}

func addPMDAFlags(fs *flag.FlagSet) *pmdaMode {
	return &pmdaMode{on: fs.Bool("pmda", false,
		"run as pmcd's root PMDA (domain 1) on standard input and output, as well as serving the socket; log to $PCP_LOG_DIR/pmcd/root.log unless -l says otherwise")}
}

// openLog opens rootd's log (internal/logfile: never through a symbolic
// link, only a regular file owned by root). In PMDA mode the default is
// pmcd's usual place for the root agent's log, $PCP_LOG_DIR/pmcd/root.log,
// a directory the PCP account can write to: a file there that is not
// root's is refused, and rootd then logs to standard error, which pmcd
// keeps in its own log.
func (m *pmdaMode) openLog(path string, pcp pcpconf.Config, stderr io.Writer) (*logfile.Log, error) {
	if !*m.on || path != "" {
		return logfile.Open(path, stderr)
	}
	def := filepath.Join(pcp.LogDir, "pmcd", "root.log")
	l, err := logfile.Open(def, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rootd: cannot open %s (%v); logging to standard error\n", def, err)
		return logfile.Open("", stderr)
	}
	return l, nil
}

// listened is called with rootd.Listen's result. In PMDA mode a socket that
// another live server owns is not fatal: pmcd still needs its root agent,
// so rootd answers the PMDA requests and leaves the socket alone.
func (m *pmdaMode) listened(ln *rootd.Socket, err error, log *slog.Logger, socket string) (*rootd.Socket, error) {
	if err == nil || !*m.on {
		return ln, err
	}
	if errors.Is(err, rootd.ErrInUse) {
		log.Error("NOT serving the root socket: another root service owns it; answering pmcd's PMDA requests only",
			"socket", socket, "err", err)
		return nil, nil
	}
	return nil, err
}

// begin starts the PMDA side once the socket is bound (or known to be
// someone else's): pmcd starts its other agents through the socket as soon
// as this agent's handshake is done, so the socket must exist first. The
// handshake does not wait for the index.
func (m *pmdaMode) begin(log *slog.Logger) {
	if !*m.on {
		return
	}
	// pmcd may be gone before rootd writes to its pipe: run has SIGPIPE
	// notified, so the write fails with EPIPE and rootd shuts down in order.
	m.log = log.With("side", "pmda")
	m.agent = pmda.New(m.log)
	m.done = make(chan error, 1)
	go func() { m.done <- m.agent.Serve(context.Background(), os.Stdin, os.Stdout) }()
}

// context returns ctx, cancelled also when pmcd closes the PMDA pipe.
func (m *pmdaMode) context(ctx context.Context) context.Context {
	if !*m.on {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case err := <-m.done:
			if err != nil {
				m.log.Error("PMDA exchange with pmcd ended", "err", err)
			} else {
				m.log.Info("pmcd closed the PMDA pipe; stopping")
			}
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx
}

// setSource hands the index to the PMDA side.
func (m *pmdaMode) setSource(src pmda.Source) {
	if *m.on {
		m.agent.SetSource(src)
	}
}

// serve runs the socket server, or, when another service owns the socket,
// only waits for the end.
func (m *pmdaMode) serve(ctx context.Context, srv *rootd.Server, ln *rootd.Socket) error {
	if ln == nil {
		<-ctx.Done()
		return nil
	}
	return srv.Serve(ctx, ln.UnixListener)
}
