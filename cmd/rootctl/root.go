package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/cli"
	"github.com/rootd-project/rootd/internal/config"
	"github.com/rootd-project/rootd/internal/pcpconf"
	"github.com/rootd-project/rootd/internal/version"
)

// Exit statuses: distinct, so that scripts and probes can tell "no such
// container" from "rootd is down" without parsing messages.
const (
	exitOK          = 0
	exitError       = 1 // any other error
	exitUsage       = 2 // bad command line or configuration file
	exitNotFound    = 3 // no such container (or, for a PID, no such process)
	exitAmbiguous   = 4 // the name matches several containers
	exitNotRunning  = 5 // the container exists but has no process
	exitRefused     = 6 // the daemon refused this user (peer credentials, socket permissions)
	exitUnreachable = 7 // no daemon: no socket, nothing listening, no greeting in time
	exitUnsupported = 8 // the daemon lacks the request (pmdaroot, an older rootd)
)

// exitStatusHelp is shown by --help and the man page.
const exitStatusHelp = `  0  success
  1  any other error (one line on standard error)
  2  usage: unknown command or flag, stray argument, bad configuration file
  3  no such container (hostname --pid, which: no such process)
  4  the name is ambiguous: it matches several containers
  5  the container exists but is not running
  6  refused: rootd closed the connection (this user is not allowed, or
     rootd is at --max-connections), or no permission on the socket file
  7  rootd unreachable: no socket, nothing listening on it, no greeting
     within --timeout
  8  the daemon does not support the request (PCP's pmdaroot, an older
     rootd): use --in-process as root`

const nameHelp = `NAME is a container name, a full ID, a unique ID prefix, ENGINE:NAME to pick
one engine, or NAMESPACE/POD/CONTAINER for Kubernetes containers.`

const rootLong = `rootctl asks rootd, the daemon that serves Performance Co-Pilot's root
socket, about containers: every command goes through the socket, so any
user rootd allows (root, the PCP user and group, --allow-uid/--allow-gid)
sees what the daemon sees, except labels: rootd sends users other than root
only the Kubernetes identity labels (io.kubernetes.pod.namespace, .pod.name,
.container.name, .pod.uid) and marks the others withheld. As root,
--in-process reads the container engines in this process instead, for
debugging the daemon.

` + nameHelp + `

Settings come from the command line, then the configuration file
(--config, default /etc/rootd/rootd.conf, TOML, shared with rootd: socket,
engines, the engines' sections, and [rootctl] timeout), then the
environment (PCP_VAR_DIR for the socket, DOCKER_HOST, CONTAINERD_ADDRESS),
then the defaults. Use --config /dev/null to ignore the file.

Exit status:
` + exitStatusHelp

// app is one run of rootctl: its streams, its view of the process
// (replaced in tests) and its flags.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	euid           func() int
	dial           func(ctx context.Context, socket string) (daemon, error)

	configPath string
	socket     string
	timeout    time.Duration
	inProcess  bool
	engines    cli.List
	set        *engine.Set
	goFlags    *flag.FlagSet // the engines' flags and --engines, shared with rootd's syntax
	configured bool
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: stdout, stderr: stderr, getenv: os.Getenv, euid: os.Geteuid, dial: dialSocket}
}

// run executes one command line and returns the exit status.
func (a *app) run(args []string) int {
	root := a.newRootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintf(a.stderr, "rootctl: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// usageError is a mistake on the command line or in the configuration: exit 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// codedError carries its exit status.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &codedError{code: code, err: err} }

// exitCode maps an error to the exit status: an explicit code first, then
// the errors of the client (wire statuses) and of the engines (in-process).
func exitCode(err error) int {
	var ce *codedError
	var ue usageError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, client.ErrNoContainer), errors.Is(err, engine.ErrNotFound):
		return exitNotFound
	case errors.Is(err, syscall.ENOTUNIQ), errors.Is(err, engine.ErrAmbiguous):
		return exitAmbiguous
	case errors.Is(err, syscall.ESRCH), errors.Is(err, engine.ErrNotRunning):
		return exitNotRunning
	case errors.Is(err, errors.ErrUnsupported):
		return exitUnsupported
	}
	return exitError
}

func (a *app) newRootCommand() *cobra.Command {
	pcp := pcpconf.Load(a.getenv)
	root := &cobra.Command{
		Use:   "rootctl",
		Short: "ask rootd (or PCP's pmdaroot) about containers",
		Long:  rootLong,
		// Cobra's own messages are replaced by run's one line and exit
		// status.
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version.Get().String("rootctl"),
		// Without a command, or with an unknown one, rootctl is used
		// wrongly: exit 2, not cobra's help with exit 0.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(a.stderr)
				_ = cmd.Usage()
				return usagef("no command given")
			}
			msg := fmt.Sprintf("unknown command %s", quoteName(args[0]))
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += " (did you mean " + strings.Join(s, " or ") + "?)"
			}
			return usageError{errors.New(msg)}
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error { return a.setup(cmd) },
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("{{.Version}}\n")
	// Cobra's usage line for a runnable root reads "rootctl [flags]"; the
	// root runs only to reject a missing or unknown command.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"Usage:{{if .Runnable}}\n  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}\n  {{.CommandPath}} [command]{{end}}",
		"Usage:{{if and .Runnable .HasParent}}\n  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}\n  {{.CommandPath}} [flags] COMMAND [ARGS]{{end}}", 1))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", config.DefaultPath, "configuration `file` shared with rootd (TOML); absent is fine unless given here")
	pf.StringVarP(&a.socket, "socket", "s", pcp.SocketPath(), "root socket `path` ($PCP_VAR_DIR/pmcd/root.socket)")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "give up after this long")
	pf.BoolVar(&a.inProcess, "in-process", false, "read the container engines in this process instead of asking rootd (root only; ls, resolve, which, status)")
	// The engines' flags are declared by the engines on a standard flag
	// set (engine.Configure), as for rootd, and carried over to cobra.
	a.goFlags = flag.NewFlagSet("rootctl", flag.ContinueOnError)
	a.goFlags.Var(&a.engines, "engines", "comma-separated `engines` for --in-process (default: all compiled in)")
	a.set = engine.Configure(a.goFlags)
	pf.AddGoFlagSet(a.goFlags)

	root.AddCommand(
		a.lookupCommand("pid", "the container's init PID", "Prints the init process's PID as the host sees it."),
		a.lookupCommand("cgroup", "the container's cgroup path (no leading slash)", "Prints the cgroup of the container's init process, relative to the cgroup root."),
		a.hostnameCommand(),
		a.lsCommand(),
		a.resolveCommand(),
		a.whichCommand(),
		a.statusCommand(),
		a.manpageCommand(),
	)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Long += `
Completion scripts complete commands, flags and, where rootd answers LIST,
container names from the daemon's own list. The packages install them for
bash, zsh and fish.`
		}
	}
	return root
}

// setup applies the configuration file once the command line is parsed:
// every flag the command line left alone takes the file's value.
func (a *app) setup(cmd *cobra.Command) error {
	if a.configured {
		return nil
	}
	a.configured = true
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == "completion" || c.Name() == "help" || c.Name() == manpageCmd {
			return nil // they print what the binary is, whatever the host's file says
		}
	}
	pf := cmd.Root().PersistentFlags()
	schema := config.Schema{
		Program: "rootctl",
		Others:  []string{"rootd"},
		Top:     map[string]string{"socket": "socket", "engines": "engines"},
		Section: map[string]string{"timeout": "timeout"},
		Engines: config.EngineKeys(engine.Drivers()),
	}
	f, err := config.Load(a.configPath, pf.Changed("config"), schema)
	if err != nil {
		return usageError{err}
	}
	if err := f.Apply(cobraFlags{goFlags: a.goFlags, flags: pf}); err != nil {
		return usageError{err}
	}
	if pf.Changed("engines") && !a.inProcess {
		return usagef("--engines selects the engines read with --in-process; rootd's own engines are set in rootd's configuration")
	}
	if a.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	return nil
}

// cobraFlags lets internal/config set rootctl's flags: the engines' values
// from their standard flag set (where the Repeatable mark is visible), the
// rest from cobra's.
type cobraFlags struct {
	goFlags *flag.FlagSet
	flags   *pflag.FlagSet
}

func (c cobraFlags) Lookup(name string) flag.Value {
	if f := c.goFlags.Lookup(name); f != nil {
		return f.Value
	}
	if f := c.flags.Lookup(name); f != nil {
		return f.Value
	}
	return nil
}

func (c cobraFlags) Changed(name string) bool { return c.flags.Changed(name) }

func (a *app) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.timeout)
}

// exactArgs and noArgs make a stray or missing argument a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s wants exactly %d %s, got %d argument(s)", cmd.Name(), n, what, len(args))
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %s", cmd.Name(), quoteName(args[0]))
	}
	return nil
}

// socketOnly refuses --in-process for the commands PCP's agents use: they
// are the daemon's answers, checked against the daemon.
func (a *app) socketOnly(cmd *cobra.Command) error {
	if a.inProcess {
		return usagef("%s always asks rootd through the socket; --in-process is for ls, resolve, which and status", cmd.Name())
	}
	return nil
}

// source is the daemon, or the engines with --in-process.
func (a *app) source(ctx context.Context) (source, error) {
	if a.inProcess {
		return a.openLocal(ctx)
	}
	return a.dial(ctx, a.socket)
}

// openSource starts a command's --timeout and opens its source; release
// closes both.
func (a *app) openSource() (context.Context, source, func(), error) {
	ctx, cancel := a.context()
	src, err := a.source(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, src, func() { src.Close(); cancel() }, nil
}

// openDaemon is openSource for the commands that always ask the daemon
// (pid, cgroup, hostname).
func (a *app) openDaemon(cmd *cobra.Command) (context.Context, daemon, func(), error) {
	if err := a.socketOnly(cmd); err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := a.context()
	d, err := a.dial(ctx, a.socket)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, d, func() { d.Close(); cancel() }, nil
}

func (a *app) lookupCommand(name, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:               name + " NAME",
		Short:             short,
		Long:              long + "\n\n" + nameHelp,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, d, release, err := a.openDaemon(cmd)
			if err != nil {
				return err
			}
			defer release()
			var out string
			switch name {
			case "pid":
				var pid int
				pid, err = d.ProcessID(ctx, args[0])
				out = fmt.Sprint(pid)
			case "cgroup":
				out, err = d.CgroupName(ctx, args[0])
			}
			if err != nil {
				return a.explain(ctx, d, args[0], err)
			}
			fmt.Fprintln(a.stdout, esc(out))
			return nil
		},
	}
}

func (a *app) hostnameCommand() *cobra.Command {
	var byPID int
	cmd := &cobra.Command{
		Use:   "hostname {NAME | --pid PID}",
		Short: "the hostname inside a container, or in a process's UTS namespace",
		Long: `Prints the hostname in the container's UTS namespace, as rootd reads it by
entering the namespace; with --pid, the hostname in process PID's UTS
namespace (rootd must be permitted to open /proc/PID/ns/uts).

` + nameHelp,
		ValidArgsFunction: a.completeNames,
		Args: func(cmd *cobra.Command, args []string) error {
			// Changed, not the value: --pid 0 is a mistake, not "no --pid".
			if cmd.Flags().Changed("pid") {
				if len(args) != 0 {
					return usagef("hostname takes NAME or --pid PID, not both")
				}
				if byPID < 1 || byPID > maxPID {
					return usagef("--pid %d: want a PID from 1 to %d", byPID, maxPID)
				}
				return nil
			}
			return exactArgs(1, "NAME (or --pid PID)")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, d, release, err := a.openDaemon(cmd)
			if err != nil {
				return err
			}
			defer release()
			var out string
			if cmd.Flags().Changed("pid") {
				if out, err = d.HostNameByPID(ctx, byPID); err != nil {
					return explainPID(byPID, err)
				}
			} else if out, err = d.HostName(ctx, args[0]); err != nil {
				return a.explain(ctx, d, args[0], err)
			}
			fmt.Fprintln(a.stdout, esc(out))
			return nil
		},
	}
	cmd.Flags().IntVar(&byPID, "pid", 0, "read the hostname of process `PID` instead of a container's")
	return cmd
}

// maxPID is the largest PID the protocol can carry (an int32); Linux's
// own limit (pid_max) is at most 2^22.
const maxPID = 1<<31 - 1

// explainPID names the real cause of a failed by-PID hostname read. rootd
// reads it by opening /proc/PID/ns/uts and entering it; the kernel allows
// that only to a process that may ptrace-read the target, and for a process
// holding capabilities rootd lacks (PID 1, when rootd runs with a reduced
// capability bounding set, as in a container or under a restrictive unit)
// it refuses with EACCES. That refusal is rootd's, not the socket's.
func explainPID(pid int, err error) error {
	switch {
	case errors.Is(err, syscall.ESRCH):
		return withCode(exitNotFound, fmt.Errorf("pid %d: no such process", pid))
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("pid %d: rootd may not read this process's UTS namespace (%w on /proc/%d/ns/uts): the process holds capabilities rootd lacks (rootd's capability bounding set is reduced) or a security module denies it", pid, err, pid)
	case errors.Is(err, syscall.ETIMEDOUT):
		return fmt.Errorf("pid %d: rootd gave up reading its hostname (--request-timeout): %w", pid, err)
	}
	return fmt.Errorf("pid %d: %w", pid, err)
}

// explain turns a failed lookup into a message an operator can act on,
// with the candidates of an ambiguous name when they can be had.
func (a *app) explain(ctx context.Context, src source, name string, err error) error {
	q := quoteName(name)
	switch {
	case errors.Is(err, client.ErrNoContainer), errors.Is(err, engine.ErrNotFound):
		return withCode(exitNotFound, fmt.Errorf("%s: no such container", q))
	case errors.Is(err, syscall.ENOTUNIQ), errors.Is(err, engine.ErrAmbiguous):
		return withCode(exitAmbiguous, a.ambiguous(ctx, src, name, err))
	case errors.Is(err, syscall.ESRCH), errors.Is(err, engine.ErrNotRunning):
		return withCode(exitNotRunning, fmt.Errorf("%s: container is not running", q))
	case errors.Is(err, syscall.EINVAL), errors.Is(err, engine.ErrInvalidName):
		return usageError{fmt.Errorf("%s: not a valid container name: %w", q, err)}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		// The socket refuses a user at connect time (see classifyDial);
		// a status in a reply is rootd's own failure to read the
		// container's process.
		return fmt.Errorf("%s: rootd may not read the container's process namespaces (%w): the process holds capabilities rootd lacks, or a security module denies it", q, err)
	case errors.Is(err, syscall.ETIMEDOUT):
		return fmt.Errorf("%s: rootd gave up (its --request-timeout): an engine answers slowly: %w", q, err)
	}
	return fmt.Errorf("%s: %w", q, err)
}

// ambiguous lists the candidates: from the error itself (DESCRIBE, or
// in-process), else from the daemon's DESCRIBE, else, for root, from the
// engines read in-process (a daemon without DESCRIBE).
func (a *app) ambiguous(ctx context.Context, src source, name string, err error) error {
	found := func(err error) *AmbiguousError {
		var amb *AmbiguousError
		if errors.As(err, &amb) && len(amb.Candidates) > 0 {
			return amb
		}
		return nil
	}
	amb := found(err)
	if amb == nil {
		_, derr := src.Describe(ctx, name)
		amb = found(derr)
	}
	if amb == nil && a.euid() == 0 && !a.inProcess {
		if l, lerr := a.openLocal(ctx); lerr == nil {
			_, derr := l.Describe(ctx, name)
			l.Close()
			amb = found(derr)
		}
	}
	if amb == nil {
		return fmt.Errorf("%s is ambiguous: it matches several containers (use a longer ID prefix or ENGINE:NAME)", quoteName(name))
	}
	var cands []string
	for _, c := range amb.Candidates {
		s := esc(c.Engine) + ":" + esc(shortID(c.ID))
		if n := displayName(c); n != "" {
			s += " (" + esc(n) + ")"
		}
		cands = append(cands, s)
	}
	return fmt.Errorf("%s is ambiguous: matches %s (use a longer ID prefix or ENGINE:NAME)", quoteName(name), strings.Join(cands, ", "))
}

func addOutputFlag(cmd *cobra.Command, output *string, asJSON *bool, help string) {
	cmd.Flags().StringVarP(output, "output", "o", outTable, help)
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputs, cobra.ShellCompDirectiveNoFileComp))
	// --json is what rootctl took before -o; kept so scripts go on working.
	cmd.Flags().BoolVar(asJSON, "json", false, "same as -o json")
	_ = cmd.Flags().MarkHidden("json")
}

func outputOf(cmd *cobra.Command, output string, asJSON bool) (string, error) {
	if asJSON {
		if cmd.Flags().Changed("output") && output != outJSON {
			return "", usagef("--json and -o %s contradict each other", output)
		}
		output = outJSON
	}
	return output, checkOutput(output, outputs)
}

func (a *app) lsCommand() *cobra.Command {
	var (
		output  string
		asJSON  bool
		quiet   bool
		filters []string
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "list every container rootd knows",
		Long: `Lists every container of every engine in rootd's index, running or not,
sorted by engine and name. The table shows the short ID (12 hex digits);
-o wide shows the full ID, every name, the namespace, cgroup and how many
labels (LABELS; "+withheld" when rootd withheld some from this user). A
listing has no hostnames, since each would mean entering the container's
UTS namespace: resolve shows one. Names with control characters, quotes or
spaces are printed Go-quoted, in every format but json.

Engines rootd cannot read at the moment (status: not available) are named
on standard error after the listing, so that a partial list is never taken
for a whole one.

--filter KEY=VALUE keeps the containers that match; different keys must all
match, a key given several times matches any of its values:
  engine=ENGINE        the engine (docker, podman, containerd, lxc, cri, static)
  state=STATE          running, paused, restarting or stopped
  name=PATTERN         a glob (path.Match: *, ?, [...]) matched against whole
                       names, or without glob characters a prefix of a name or ID
  label=KEY[=VALUE]    has the label (with that value)

rootd sends users other than root only the Kubernetes identity labels
(io.kubernetes.pod.namespace, io.kubernetes.pod.name,
io.kubernetes.container.name, io.kubernetes.pod.uid). A label= filter on
another key then matches only what this user sees: rootctl says so on
standard error and still exits 0, since the listing is right for what the
user may see; run it as root to filter on every label.`,
		Example: `  rootctl ls
  rootctl ls -o wide --filter engine=docker --filter state=running
  rootctl ls --filter 'name=default/*' -o name
  rootctl ls -q --filter label=io.kubernetes.pod.namespace=kube-system`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputOf(cmd, output, asJSON)
			if err != nil {
				return err
			}
			if quiet && (cmd.Flags().Changed("output") || asJSON) {
				return usagef("-q prints IDs only; it does not combine with -o")
			}
			flt, err := parseFilters(filters)
			if err != nil {
				return err
			}
			ctx, src, release, err := a.openSource()
			if err != nil {
				return err
			}
			defer release()
			all, err := src.List(ctx)
			if err != nil {
				return err
			}
			var rows []Info
			redacted := false
			for _, c := range all {
				redacted = redacted || c.LabelsRedacted
				if flt.match(c) {
					rows = append(rows, c)
				}
			}
			slices.SortStableFunc(rows, func(x, y Info) int {
				if c := strings.Compare(x.Engine, y.Engine); c != 0 {
					return c
				}
				if c := strings.Compare(displayName(x), displayName(y)); c != 0 {
					return c
				}
				return strings.Compare(x.ID, y.ID)
			})
			if quiet {
				for _, c := range rows {
					fmt.Fprintln(a.stdout, esc(c.ID))
				}
			} else if err := printContainers(a.stdout, rows, format, true); err != nil {
				return err
			}
			if hidden := flt.hiddenLabelFilters(); redacted && len(hidden) > 0 {
				for i, l := range hidden {
					hidden[i] = "label=" + esc(l)
				}
				fmt.Fprintf(a.stderr, "rootctl: warning: --filter %s: rootd shows users other than root only the Kubernetes identity labels (%s); containers whose other labels match are not listed (run as root to filter on every label)\n",
					strings.Join(hidden, ", "), strings.Join(publicLabels, ", "))
			}
			a.warnEngines(ctx, src)
			return nil
		},
	}
	addOutputFlag(cmd, &output, &asJSON, "output `format`: table, wide (adds the full ID, every name, namespace and label count), json or name")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print full IDs only, one a line")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "keep containers matching `KEY=VALUE` (engine=, state=, name=, label=; repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("filter", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		out := []string{"engine=", "name=", "label="}
		for _, s := range []engine.State{engine.StateRunning, engine.StatePaused, engine.StateRestarting, engine.StateStopped} {
			out = append(out, "state="+string(s))
		}
		for _, n := range a.set.Names() {
			out = append(out, "engine="+n)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
	return cmd
}

// warnEngines says on standard error which engines are not available (from
// STATUS, on the listing's connection), so that a partial or empty list is
// not mistaken for all the containers there are; it says so too when the
// engines' health cannot be had. The exit status stays 0: the listing is
// what the daemon has.
func (a *app) warnEngines(ctx context.Context, src source) {
	st, err := src.Status(ctx)
	if err != nil {
		fmt.Fprintf(a.stderr, "rootctl: warning: the engines' health is unknown, the list may be partial: %s\n", escText(err.Error()))
		return
	}
	for _, e := range st.Engines {
		if e.Health != "available" {
			msg := fmt.Sprintf("rootctl: warning: engine %s is %s", esc(e.Name), esc(e.Health))
			if e.Error != "" {
				msg += ": " + escText(e.Error)
			}
			fmt.Fprintln(a.stderr, msg+"; its containers may be missing or out of date")
		}
	}
}

func (a *app) resolveCommand() *cobra.Command {
	var (
		output string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "resolve NAME",
		Short: "every field of one container",
		Long: `Resolves NAME as rootd does for PCP and prints the container one field a
line: engine, full ID, names, state, PID, namespace, cgroup, the hostname
in its UTS namespace, and its labels. rootd sends users other than root
only the Kubernetes identity labels; the others are shown as withheld
(-o json: "labels_redacted": true).

A container that exists but is not running is printed as far as rootd
knows it, and rootctl exits 5.

` + nameHelp,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputOf(cmd, output, asJSON)
			if err != nil {
				return err
			}
			ctx, src, release, err := a.openSource()
			if err != nil {
				return err
			}
			defer release()
			c, err := src.Describe(ctx, args[0])
			if err != nil {
				if errors.Is(err, errors.ErrUnsupported) {
					return err
				}
				if notRunning(err) && c.ID != "" {
					// Both sources give the container with the error:
					// print what is known, and exit 5.
					if perr := printContainers(a.stdout, []Info{c}, format, false); perr != nil {
						return perr
					}
				}
				return a.explain(ctx, src, args[0], err)
			}
			return printContainers(a.stdout, []Info{c}, format, false)
		},
	}
	addOutputFlag(cmd, &output, &asJSON, "output `format`: table or wide (one field a line, labels included), json or name")
	return cmd
}

func notRunning(err error) bool {
	return errors.Is(err, syscall.ESRCH) || errors.Is(err, engine.ErrNotRunning)
}

func (a *app) whichCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "which PID",
		Short: "the container process PID belongs to",
		Long: `Finds the container whose init process PID is, or whose cgroup holds PID
(processes started inside a container, as by docker exec).`,
		Args: exactArgs(1, "PID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outputs); err != nil {
				return err
			}
			var pid int
			if _, err := fmt.Sscan(args[0], &pid); err != nil || pid < 1 || pid > maxPID || fmt.Sprint(pid) != args[0] {
				return usagef("bad PID %s", quoteName(args[0]))
			}
			ctx, src, release, err := a.openSource()
			if err != nil {
				return err
			}
			defer release()
			c, err := src.DescribePID(ctx, pid)
			switch {
			case err == nil:
			case errors.Is(err, errors.ErrUnsupported):
				return err
			case errors.Is(err, client.ErrNoContainer), errors.Is(err, engine.ErrNotFound):
				return withCode(exitNotFound, fmt.Errorf("pid %d: in no container rootd knows", pid))
			case errors.Is(err, syscall.ESRCH):
				return withCode(exitNotFound, fmt.Errorf("pid %d: no such process", pid))
			default:
				return fmt.Errorf("pid %d: %w", pid, err)
			}
			return printContainers(a.stdout, []Info{c}, output, false)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", outTable, "output `format`: table or wide (one field a line), json or name")
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "the daemon's version, readiness and engines",
		Long: `Shows what rootd reports of itself: its version, when it started, whether
its first index is built (ready), how many containers it knows, and for
each engine its health (available, slow, failing, hung, unavailable,
unknown), container count by state and last error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, []string{outTable, outJSON}); err != nil {
				return err
			}
			ctx, src, release, err := a.openSource()
			if err != nil {
				return err
			}
			defer release()
			st, err := src.Status(ctx)
			if err != nil {
				return err
			}
			if output == outJSON {
				return writeJSON(a.stdout, st)
			}
			return printStatus(a.stdout, st)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", outTable, "output `format`: table or json")
	return cmd
}

// completeNames offers the names in the daemon's list; it asks once, with a
// short deadline, and offers nothing when the daemon cannot list.
func (a *app) completeNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 || a.inProcess {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	// Completion does not run the commands' hooks: read the file here
	// for its socket; a broken file completes nothing.
	if err := a.setup(cmd); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(a.timeout, 2*time.Second))
	defer cancel()
	d, err := a.dial(ctx, a.socket)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer d.Close()
	list, err := d.List(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, c := range list {
		for _, n := range c.Names {
			// A name the shell could not pass back whole is not offered.
			if strings.HasPrefix(n, toComplete) && esc(n) == n && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

func quietLog(w io.Writer) *slog.Logger {
	l, _ := cli.Logger(w, "error", "text")
	return l
}
