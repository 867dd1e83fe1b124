// Command rootd is the privileged container-resolution service for PCP: a
// drop-in replacement for pmdaroot's socket.
package main

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
	"os/user"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/cli"
	"github.com/rootd-project/rootd/internal/config"
	"github.com/rootd-project/rootd/internal/logfile"
	"github.com/rootd-project/rootd/internal/metrics"
	"github.com/rootd-project/rootd/internal/pcpconf"
	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/internal/sdnotify"
	"github.com/rootd-project/rootd/internal/version"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/rootd"
)

const usage = `Usage: rootd [-s PATH] [-l LOGFILE] [flags]

rootd answers PCP's privileged "root" socket: it resolves containers of every
configured engine (by name, full ID or unique ID prefix) to their init PID,
hostname and cgroup path, and starts, reaps and stops pmcd's agents. It runs
in the foreground; stop it with SIGTERM or SIGINT. SIGHUP reopens the -l log
file (for logrotate). Under systemd (Type=notify) it reports READY=1 once the
socket is bound and the first index is built, STOPPING=1 when it stops.

Only root, the PCP account and the users and groups given with --allow-uid
and --allow-gid may connect. The socket's directory and every directory above
it must be root's and not writable by group or others (a root-owned sticky
directory like /tmp is accepted); the -l file must not be a symlink (nor
have one in its path) and, if it exists, must be a root-owned regular file.

Settings also come from the configuration file (--config, default
/etc/rootd/rootd.conf, TOML, shared with rootctl): top-level socket and
engines, a section per engine whose keys are its flags less the engine's
name ([docker] host sets --docker-host), and [rootd] whose keys are the
flags below (log-file for -l). A flag on the command line wins over the
file, the file over the environment (DOCKER_HOST, CONTAINERD_ADDRESS,
PCP_*), the environment over the default. An absent default file is no
error; an absent --config file, an unknown key or a bad value is (exit 2),
and so is a file that is not a regular file owned by root and not
writable by group or others, in directories that are root's and not
writable by group or others (the file can grant root-equivalent access).
--config /dev/null reads no file. --check-config checks the configuration
(file and flags) without starting anything: exit 0 if rootd would start
with it, 2 if not.

Flags:
`

func init() {
	// Keep the main thread for the main goroutine alone, so it never visits
	// a container's UTS namespace for a hostname read: /proc/<rootd>/ns/uts
	// always shows rootd's own namespace to anyone who looks.
	runtime.LockOSThread()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	started := time.Now() // for STATUS
	// SIGPIPE must never kill rootd: a write to standard error whose reader
	// went away (a closed journal stream, a shell pipe) raises it, and Go
	// dies of it on descriptors 1 and 2 unless the signal is notified. The
	// write then fails with EPIPE and is counted as dropped. Notify, not
	// Ignore: an ignored signal stays ignored across exec, and the agents
	// rootd starts must get the default disposition, as from pmdaroot.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// SIGHUP reopens the log; installed first so that one arriving during
	// start-up does not kill rootd either.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	pcp := pcpconf.Load(os.Getenv)
	fs := flag.NewFlagSet("rootd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		socket     = fs.String("s", pcp.SocketPath(), "socket `path`: $PCP_VAR_DIR/pmcd/root.socket, PCP_VAR_DIR from the environment or pcp.conf")
		logPath    = fs.String("l", "", "log `file` (default: standard error)")
		logLevel   = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
		logFormat  = fs.String("log-format", "text", "log `format`: text (logfmt key=value) or json (one object a line)")
		metricsAt  = fs.String("metrics-address", "", "serve Prometheus metrics, /healthz and /readyz over HTTP at `address`: unix:/path or a loopback host:port (127.0.0.1:9559, [::1]:9559, localhost:9559); off by default")
		engines    cli.List
		allowUIDs  cli.List
		allowGIDs  cli.List
		allowExec  cli.List
		reqTimeout = fs.Duration("request-timeout", 5*time.Second, "longest one container lookup may take")
		readTO     = fs.Duration("read-timeout", 5*time.Second, "longest a client may take to send the rest of a request once begun")
		showVer    = fs.Bool("version", false, "print the version, commit and commit date, then exit (reads no configuration file)")
		checkOnly  = fs.Bool("check-config", false, "check the configuration (file and flags: keys, values, the file's ownership, user, group and engine names, the metrics address) and exit: 0 if rootd would start with it, 2 if not; nothing is opened or started")
		maxConns   = fs.Int("max-connections", rootd.DefaultMaxConnections, "most clients connected at once; more are closed before the greeting")
	)
	fs.Var(&engines, "engines", "comma-separated `engines` to use (default: all compiled in: "+strings.Join(driverNames(), ", ")+")")
	fs.Var(&allowUIDs, "allow-uid", "also allow these `users` (names or uids; repeatable, comma-separated)")
	fs.Var(&allowGIDs, "allow-gid", "also allow members of these `groups` (names or gids; repeatable)")
	fs.Var(&allowExec, "allow-exec", "non-root clients may also start these `programs` (any arguments); an entry ending in / allows a directory; root clients may start anything (default: none)")
	pmcdConf := fs.String("pmcd-conf", pcp.PMCDConf, "pmcd's configuration `file` (pmcd -c): non-root clients may start exactly its agents' command lines (PCP_PMCDCONF_PATH)")
	set := engine.Configure(fs)
	pm := addPMDAFlags(fs)
	configPath := fs.String("config", config.DefaultPath, "configuration `file` (TOML; see rootd.conf in docs/operations.md); absent is fine unless given here")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nEngines compiled in:")
		for _, d := range engine.Drivers() {
			fmt.Fprintf(stderr, "  %-11s %s\n", d.Name, d.Summary)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rootd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVer {
		fmt.Fprintln(stdout, version.Get().String("rootd"))
		return 0
	}
	// Everything a configuration can get wrong is checked here, before
	// anything is opened, so that --check-config checks exactly what start
	// would refuse, and each such mistake is exit status 2.
	if err := applyConfig(fs, *configPath); err != nil {
		fmt.Fprintf(stderr, "rootd: %v\n", err)
		return 2
	}
	access, err := checkSettings(settings{
		logLevel: *logLevel, logFormat: *logFormat, metricsAt: *metricsAt, maxConns: *maxConns,
		allowUIDs: allowUIDs, allowGIDs: allowGIDs, engines: engines, set: set,
	})
	if err != nil {
		fmt.Fprintf(stderr, "rootd: %v\n", err)
		return 2
	}
	if *checkOnly {
		fmt.Fprintf(stdout, "rootd: configuration OK (%s)\n", describeConfig(fs, *configPath))
		return 0
	}

	logOut, err := pm.openLog(*logPath, pcp, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rootd: %v\n", err)
		return 1
	}
	defer logOut.Close()
	log, err := cli.Logger(logOut, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "rootd: %v\n", err)
		return 2
	}
	fail := func(msg string, err error) int {
		log.Error(msg, "err", err)
		fmt.Fprintf(stderr, "rootd: %s: %v\n", msg, err)
		return 1
	}
	var metricsLn net.Listener
	if *metricsAt != "" {
		// Opened before anything else that takes time, so that a bad
		// address fails at once; served once the server exists.
		if metricsLn, err = metrics.Listen(*metricsAt); err != nil {
			log.Error("--metrics-address", "err", err)
			fmt.Fprintf(stderr, "rootd: --metrics-address: %v\n", err)
			return 1 // its form was checked above: this is the listen failing
		}
		defer metricsLn.Close()
	}
	notify, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("not reporting readiness to systemd", "err", err)
	}

	if u, err := user.Lookup(pcp.User); err == nil {
		ids, _ := cli.UIDs([]string{u.Uid})
		for id := range ids {
			access.UIDs[id] = true
		}
	} else {
		log.Info("PCP account not found; only root and --allow-uid/--allow-gid may connect", "user", pcp.User)
	}

	opened, err := set.Open(engine.Env{Log: log, Getenv: os.Getenv}, engines)
	if err != nil {
		return fail("opening engines", err)
	}
	defer func() {
		for _, e := range opened {
			if c, ok := e.(io.Closer); ok {
				c.Close()
			}
		}
	}()

	ln, err := rootd.Listen(*socket, rootd.ListenOptions{Group: pcp.Group})
	if ln, err = pm.listened(ln, err, log, *socket); err != nil {
		return fail("cannot listen", err)
	}
	closeSocket := sync.OnceFunc(func() {
		// The socket file is removed only while it is still the one bound
		// above: if pmdaroot or another rootd has taken the path, it is
		// theirs.
		if ln == nil {
			return // another service owns the socket (PMDA mode)
		}
		err := ln.Close()
		switch {
		case errors.Is(err, rootd.ErrSocketLost):
			log.Warn("socket path was taken over; leaving it alone", "socket", ln.Path, "err", err)
		case err != nil:
			log.Error("removing socket", "socket", ln.Path, "err", err)
		}
	})
	defer closeSocket()
	pm.begin(log)

	if os.Getenv("GOGC") == "" {
		// Nearly all of rootd's heap is the long-lived index; a request
		// leaves little garbage. Collecting at 25% growth instead of Go's
		// 100% keeps memory near the index's size for a GC cost of a few
		// percent of one CPU at full request rate. GOGC overrides it.
		debug.SetGCPercent(25)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = pm.context(ctx)
	stoppingSent := make(chan struct{})
	context.AfterFunc(ctx, func() {
		defer close(stoppingSent)
		if err := notify.Notify(sdnotify.Stopping); err != nil {
			log.Warn("telling systemd rootd is stopping", "err", err)
		}
	})
	go reopenOnHangup(ctx, hup, logOut, log)

	// Opened once, rootd's own UTS namespace is where every hostname read
	// returns to.
	uts, err := procfs.NewUTSReader()
	if err != nil {
		return fail("hostname reader", err)
	}
	defer uts.Close()
	res := resolver.New(opened, resolver.Options{Log: log, Hostname: uts.Hostname})
	pm.setSource(res)
	resDone := make(chan struct{})
	go func() {
		defer close(resDone)
		res.Run(ctx)
	}()
	go func() {
		start := time.Now()
		select {
		case <-res.Ready():
		case <-ctx.Done():
			return
		}
		n := 0
		for _, st := range res.Status() {
			n += st.Containers
		}
		// Listing a large host leaves megabytes of decoded engine state
		// behind; hand it back now rather than whenever the GC gets to it.
		debug.FreeOSMemory()
		log.Info("index ready", "containers", n, "took", time.Since(start).Round(time.Millisecond))
		// The socket is bound and answers from a whole index: pmcd, ordered
		// after rootd, may start now.
		if err := notify.Notify(sdnotify.Ready); err != nil {
			log.Warn("telling systemd rootd is ready", "err", err)
		}
	}()

	srv := rootd.NewServer(rootd.Config{
		Log:            log,
		Resolver:       res,
		Processes:      rootd.NewSupervisor(rootd.SupervisorConfig{Log: log, PMCDConf: *pmcdConf, AllowedPrograms: allowExec}),
		Access:         access,
		HostnameOfPID:  uts.Hostname,
		RequestTimeout: *reqTimeout,
		ReadTimeout:    *readTO,
		MaxConnections: *maxConns,
		Started:        started,
	})
	names := make([]string, len(opened))
	for i, e := range opened {
		names[i] = e.Name()
	}
	if ln != nil {
		log.Info("rootd listening", "socket", ln.Path, "engines", names, "pid", os.Getpid(), "max_connections", *maxConns)
	}
	metricsDone := make(chan struct{})
	if metricsLn != nil {
		reg := metrics.NewRegistry(metrics.Sources{
			Server: srv, Resolver: res, Supervisor: srv.Processes(), LogDropped: logOut.Dropped,
		})
		ready := func() bool {
			select {
			case <-res.Ready():
				return true // the socket was bound (or is another service's) before Run began
			default:
				return false
			}
		}
		log.Info("serving metrics", "address", metricsLn.Addr().String())
		go func() {
			defer close(metricsDone)
			if err := metrics.Serve(ctx, metricsLn, metrics.Handler(reg, ready, log)); err != nil {
				log.Error("metrics listener failed; rootd goes on without it", "err", err)
			}
		}()
	} else {
		close(metricsDone)
	}
	err = pm.serve(ctx, srv, ln)
	<-resDone
	<-metricsDone
	if ctx.Err() != nil {
		<-stoppingSent
	}
	if err != nil {
		return fail("serve", err)
	}
	closeSocket()
	log.Info("rootd stopped", "log_writes_dropped", logOut.Dropped(), "log_lines_suppressed", srv.SuppressedLogLines())
	return 0
}

// reopenOnHangup reopens the log file on each SIGHUP until ctx is done, and
// says so in one line (in the new file). If the path has become unsafe or
// cannot be opened, logging stays on the file already open.
func reopenOnHangup(ctx context.Context, hup <-chan os.Signal, out *logfile.Log, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		switch err := out.Reopen(); {
		case errors.Is(err, logfile.ErrNoFile):
			log.Info("SIGHUP: logging to standard error, nothing to reopen")
		case err != nil:
			log.Error("SIGHUP: cannot reopen the log file; still writing to the one open", "path", out.Path(), "err", err)
		default:
			log.Info("SIGHUP: log file reopened", "path", out.Path())
		}
	}
}

// settings are the values checkSettings checks.
type settings struct {
	logLevel, logFormat, metricsAt string
	maxConns                       int
	allowUIDs, allowGIDs, engines  []string
	set                            *engine.Set
}

// checkSettings checks every value that the flags' own Set does not,
// opening nothing, and returns the access the allow lists grant. An error
// is a configuration mistake (exit status 2).
func checkSettings(s settings) (rootd.Access, error) {
	var access rootd.Access
	if _, err := cli.Logger(io.Discard, s.logLevel, s.logFormat); err != nil {
		return access, err
	}
	if s.maxConns < 1 {
		return access, errors.New("--max-connections must be at least 1")
	}
	if s.metricsAt != "" {
		if err := metrics.CheckAddress(s.metricsAt); err != nil {
			return access, fmt.Errorf("--metrics-address: %w", err)
		}
	}
	var err error
	if access.UIDs, err = cli.UIDs(s.allowUIDs); err != nil {
		return access, fmt.Errorf("--allow-uid: %w", err)
	}
	if access.GIDs, err = cli.GIDs(s.allowGIDs); err != nil {
		return access, fmt.Errorf("--allow-gid: %w", err)
	}
	if err := s.set.Check(s.engines); err != nil {
		return access, fmt.Errorf("--engines: %w", err)
	}
	return access, nil
}

// describeConfig says which configuration file --check-config checked.
func describeConfig(fs *flag.FlagSet, path string) string {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	switch _, err := os.Stat(path); {
	case path == os.DevNull:
		return "no configuration file"
	case err != nil && !explicit:
		return "no configuration file: " + path + " is absent"
	}
	return path
}

// applyConfig gives every flag the command line left unset its value from
// the configuration file, if the file has one.
func applyConfig(fs *flag.FlagSet, path string) error {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	schema := config.Schema{
		Program: "rootd",
		Others:  []string{"rootctl"},
		Top:     map[string]string{"socket": "s", "engines": "engines"},
		Engines: config.EngineKeys(engine.Drivers()),
	}
	schema.Section = config.ProgramKeys(fs, schema, map[string]string{"l": "log-file"}, "version", "config", "check-config")
	// The file can grant root-equivalent access (allow-uid, allow-gid,
	// allow-exec): only one that root alone can change is read.
	f, err := config.LoadTrusted(path, explicit, schema, rootd.TrustedFile)
	if err != nil {
		return err
	}
	return f.Apply(config.StdFlags(fs))
}

func driverNames() []string {
	var names []string
	for _, d := range engine.Drivers() {
		names = append(names, d.Name)
	}
	return names
}
