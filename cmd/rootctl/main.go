// Command rootctl asks rootd (or PCP's pmdaroot) about containers, and, run
// as root, inspects the engines directly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/cli"
	"github.com/rootd-project/rootd/internal/pcpconf"
	"github.com/rootd-project/rootd/internal/version"
	"github.com/rootd-project/rootd/resolver"
)

const usage = `Usage: rootctl [flags] COMMAND [ARGS]

Through the root socket (any user rootd allows):
  pid NAME             the container's init PID
  hostname NAME        the hostname inside the container
  hostname --pid PID   the hostname in process PID's UTS namespace
  cgroup NAME          the container's cgroup path (no leading slash)

In-process, reading the engines directly (root only):
  ls [--json]          every container: ENGINE, ID, NAME, STATE, PID, CGROUP
  resolve [--json] NAME  every field of one container
  which PID            the container process PID belongs to

NAME is a container name, a full ID, a unique ID prefix, ENGINE:NAME to pick
one engine, or NAMESPACE/POD/CONTAINER for Kubernetes containers.
Exit status: 0 on success, 1 on any error (one line on standard error),
2 for usage errors.

Flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type app struct {
	socket  string
	timeout time.Duration
	engines cli.List
	set     *engine.Set
	stdout  io.Writer
	stderr  io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	pcp := pcpconf.Load(os.Getenv)
	a := &app{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("rootctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.socket, "s", pcp.SocketPath(), "root socket `path`")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "give up after this long")
	fs.Var(&a.engines, "engines", "engines for in-process commands (default: all compiled in)")
	a.set = engine.Configure(fs)
	showVer := fs.Bool("version", false, "print the version, commit and commit date, then exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVer {
		fmt.Fprintln(stdout, version.Get().String("rootctl"))
		return 0
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "pid", "cgroup", "hostname":
		err = a.socketQuery(ctx, cmd, rest)
	case "ls":
		err = a.list(ctx, rest)
	case "resolve":
		err = a.resolve(ctx, rest)
	case "which":
		err = a.which(ctx, rest)
	default:
		fmt.Fprintf(stderr, "rootctl: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "rootctl %s: %v\n", cmd, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "rootctl: %s\n", oneLine(err))
		return 1
	}
	return 0
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

func (a *app) socketQuery(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	byPID := 0
	if cmd == "hostname" {
		fs.IntVar(&byPID, "pid", 0, "read the hostname of this process instead of a container")
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if byPID == 0 && fs.NArg() != 1 || byPID != 0 && fs.NArg() != 0 {
		return usagef("want exactly one NAME (or --pid PID for hostname)")
	}
	c, err := client.Connect(ctx, a.socket)
	if err != nil {
		return err
	}
	defer c.Close()
	name := fs.Arg(0)
	var out string
	switch {
	case byPID != 0:
		out, err = c.HostNameByPID(ctx, byPID)
		name = "pid " + strconv.Itoa(byPID)
	case cmd == "pid":
		var pid int
		pid, err = c.ProcessID(ctx, name)
		out = strconv.Itoa(pid)
	case cmd == "cgroup":
		out, err = c.CgroupName(ctx, name)
	default:
		out, err = c.HostName(ctx, name)
	}
	if err != nil {
		return a.explain(ctx, name, err)
	}
	fmt.Fprintln(a.stdout, out)
	return nil
}

// explain turns a reply status into a message an operator can act on; for
// an ambiguous name, root also gets the candidates, found in-process.
func (a *app) explain(ctx context.Context, name string, err error) error {
	switch {
	case errors.Is(err, client.ErrNoContainer):
		return fmt.Errorf("%s: no such container", name)
	case errors.Is(err, syscall.ENOTUNIQ):
		if os.Geteuid() == 0 {
			if _, lerr := a.resolver(ctx).Resolve(ctx, name); errors.Is(lerr, engine.ErrAmbiguous) {
				return lerr
			}
		}
		return fmt.Errorf("%s: ambiguous, matches several containers (use a longer prefix or ENGINE:NAME)", name)
	case errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("%s: container is not running", name)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("%s: invalid request", name)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		return fmt.Errorf("%s: %w (is this user allowed to use %s?)", name, err, a.socket)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (a *app) resolver(ctx context.Context) *resolver.Resolver {
	opened, err := a.set.Open(engine.Env{Log: quietLog(a.stderr), Getenv: os.Getenv}, a.engines)
	if err != nil {
		return resolver.New(nil, resolver.Options{Log: quietLog(a.stderr)})
	}
	r := resolver.New(opened, resolver.Options{Log: quietLog(a.stderr)})
	r.Refresh(ctx)
	return r
}

func quietLog(w io.Writer) *slog.Logger {
	l, _ := cli.Logger(w, "error", "text")
	return l
}

func (a *app) needRoot(cmd string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s reads the container engines directly and needs root; use pid, hostname or cgroup through rootd instead", cmd)
	}
	return nil
}

// row is what ls and resolve print.
type row struct {
	engine.Container
	Cgroup   string `json:"cgroup,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

func (a *app) describe(ctx context.Context, r *resolver.Resolver, c engine.Container, withHost bool) row {
	out := row{Container: c}
	if c.State.HasProcess() && c.PID > 0 {
		q := c.Engine + ":" + c.ID
		if _, cg, err := r.CgroupPath(ctx, q); err == nil {
			out.Cgroup = cg
		}
		if withHost {
			if _, h, err := r.Hostname(ctx, q); err == nil {
				out.Hostname = h
			}
		}
	}
	return out
}

func (a *app) list(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if err := a.needRoot("ls"); err != nil {
		return err
	}
	r := a.resolver(ctx)
	var rows []row
	for _, c := range r.Containers() {
		rows = append(rows, a.describe(ctx, r, c, false))
	}
	if *asJSON {
		if rows == nil {
			rows = []row{}
		}
		return writeJSON(a.stdout, rows)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tID\tNAME\tSTATE\tPID\tCGROUP")
	for _, x := range rows {
		pid := "-"
		if x.PID > 0 {
			pid = strconv.Itoa(x.PID)
		}
		name := "-"
		if len(x.Names) > 0 {
			name = x.Names[0]
		}
		cg := x.Cgroup
		if cg == "" {
			cg = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", x.Engine, x.ShortID(), name, x.State, pid, cg)
	}
	for _, st := range r.Status() {
		if st.Health != "available" {
			fmt.Fprintf(a.stderr, "rootctl: engine %s %s: %v\n", st.Name, st.Health, st.Err)
		}
	}
	return tw.Flush()
}

func (a *app) resolve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("resolve", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one NAME")
	}
	if err := a.needRoot("resolve"); err != nil {
		return err
	}
	r := a.resolver(ctx)
	c, err := r.Resolve(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return a.printOne(a.describe(ctx, r, c, true), *asJSON)
}

func (a *app) printOne(x row, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, x)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "engine:\t%s\n", x.Engine)
	fmt.Fprintf(tw, "id:\t%s\n", x.ID)
	fmt.Fprintf(tw, "names:\t%s\n", strings.Join(x.Names, ", "))
	fmt.Fprintf(tw, "state:\t%s\n", x.State)
	fmt.Fprintf(tw, "pid:\t%d\n", x.PID)
	if x.Namespace != "" {
		fmt.Fprintf(tw, "namespace:\t%s\n", x.Namespace)
	}
	fmt.Fprintf(tw, "cgroup:\t%s\n", x.Cgroup)
	fmt.Fprintf(tw, "hostname:\t%s\n", x.Hostname)
	for _, k := range sortedKeys(x.Labels) {
		fmt.Fprintf(tw, "label:\t%s=%s\n", k, x.Labels[k])
	}
	return tw.Flush()
}

func (a *app) which(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one PID")
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid < 1 {
		return usagef("bad PID %q", args[0])
	}
	if err := a.needRoot("which"); err != nil {
		return err
	}
	r := a.resolver(ctx)
	c, err := r.ByPID(ctx, pid)
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	name := c.ID
	if len(c.Names) > 0 {
		name = c.Names[0]
	}
	fmt.Fprintf(a.stdout, "%s\t%s\t%s\n", c.Engine, c.ShortID(), name)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
