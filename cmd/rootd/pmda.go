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
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/rootd-project/rootd/internal/cli"
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

// openLog opens rootd's log. In PMDA mode the default is pmcd's usual
// place for the root agent's log, and every log file is opened safely:
// never through a symbolic link, and only if it is a regular file owned by
// rootd's user.
func (m *pmdaMode) openLog(path string, pcp pcpconf.Config, stderr io.Writer) (io.Writer, error) {
	if !*m.on {
		return cli.OpenLog(path)
	}
	if path == "-" {
		return os.Stderr, nil
	}
	if path == "" {
		def := filepath.Join(pcp.LogDir, "pmcd", "root.log")
		w, err := openLogSafely(def)
		if err != nil {
			// pmcd keeps its agents' standard error in its own log.
			fmt.Fprintf(stderr, "rootd: cannot open %s (%v); logging to standard error\n", def, err)
			return os.Stderr, nil
		}
		return w, nil
	}
	return openLogSafely(path)
}

// openLogSafely appends to path, creating it 0644 if missing. It refuses a
// symbolic link (O_NOFOLLOW), anything but a regular file, and a file
// owned by another user, who could otherwise have rootd write where they
// choose. (internal/cli is getting a shared opener of this kind; this one
// is the minimum PMDA mode needs until then.)
func openLogSafely(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("log %s is not a regular file", path)
	}
	if int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("log %s is owned by uid %d, not %d; refusing it", path, st.Uid, os.Geteuid())
	}
	return f, nil
}

// listened is called with rootd.Listen's result. In PMDA mode a socket that
// another live server owns is not fatal: pmcd still needs its root agent,
// so rootd answers the PMDA requests and leaves the socket alone.
func (m *pmdaMode) listened(ln *net.UnixListener, err error, log *slog.Logger, socket string) (*net.UnixListener, error) {
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
	// pmcd may be gone before rootd writes to its pipe. Go kills a program
	// that writes to a broken pipe on descriptor 1 unless SIGPIPE is
	// notified; with this the write fails with EPIPE and rootd shuts down
	// in order. (A handler, unlike SIG_IGN, is not inherited by agents.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
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
func (m *pmdaMode) serve(ctx context.Context, srv *rootd.Server, ln *net.UnixListener) error {
	if ln == nil {
		<-ctx.Done()
		return nil
	}
	return srv.Serve(ctx, ln)
}
