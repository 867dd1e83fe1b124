// Command gendocs writes the man pages rootd(8) and rootctl(1) from the
// programs' own help (see internal/manpage), so every option the binaries
// accept is in the pages the packages ship: rootd's -h output, and
// rootctl's command tree as its hidden __manpage command prints it (cobra's
// help is per command, so the tree is read whole, not parsed from text):
//
//	go run ./cmd/gendocs -bin bin -o bin/man
//
// It runs the built binaries, not the source, so the pages describe exactly
// the engines compiled in. PCP's settings are neutralised while it runs
// (PCP_CONF=/dev/null, no PCP_* variables), so defaults are PCP's, not the
// build machine's. The date is SOURCE_DATE_EPOCH's, for reproducible pages.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rootd-project/rootd/internal/manpage"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the built rootd and rootctl")
	out := flag.String("o", "bin/man", "output directory (man1/, man8/ are created)")
	flag.Parse()
	if err := run(*bin, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(bin, out string) error {
	date := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %v", s, err)
		}
		date = time.Unix(sec, 0).UTC()
	}
	for _, pg := range pages() {
		prog := filepath.Join(bin, pg.Name)
		if pg.Name == "rootctl" {
			tree, err := output(prog, "__manpage")
			if err != nil {
				return err
			}
			pg.Help = &manpage.Help{}
			if err := json.Unmarshal([]byte(tree), pg.Help); err != nil {
				return fmt.Errorf("%s __manpage: %v", prog, err)
			}
		} else {
			help, err := output(prog, "-h")
			if err != nil {
				return err
			}
			if pg.Help, err = manpage.ParseHelp(help); err != nil {
				return fmt.Errorf("%s -h: %v", prog, err)
			}
		}
		ver, err := output(prog, "--version")
		if err != nil {
			return err
		}
		// "rootd 0.4.0 (commit ...)" -> "rootd 0.4.0"
		f := strings.Fields(ver)
		if len(f) < 2 {
			return fmt.Errorf("%s --version: %q", prog, ver)
		}
		pg.Source = f[0] + " " + f[1]
		pg.Date = date.Format("2006-01-02")
		dir := filepath.Join(out, "man"+pg.Section)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(dir, pg.Name+"."+pg.Section)
		if err := os.WriteFile(path, []byte(pg.Roff()), 0o644); err != nil {
			return err
		}
		fmt.Println("gendocs:", path)
	}
	return nil
}

// output runs prog with PCP's settings neutralised and returns what it
// printed on either stream (flag's -h goes to standard error, exit 0).
func output(prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	env := []string{"PCP_CONF=/dev/null", "LC_ALL=C"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PCP_") || k == "LC_ALL" || k == "DOCKER_HOST" || k == "CONTAINERD_ADDRESS" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, buf.String())
	}
	return buf.String(), nil
}

func pages() []*manpage.Page {
	return []*manpage.Page{
		{
			Name: "rootd", Section: "8", Manual: "System Manager's Manual",
			Summary: "privileged container resolution for Performance Co-Pilot (pmdaroot's socket)",
			After: []manpage.Section{
				{Heading: "Signals", Body: `SIGTERM or SIGINT: stop accepting, finish the requests in progress, remove
the socket and exit 0. Agents rootd started keep running.

SIGHUP: reopen the log file given with -l (for logrotate(8); the packages
ship /etc/logrotate.d/rootd, which sends it).`},
				{Heading: "Files", Body: `/var/lib/pcp/pmcd/root.socket
the socket, $PCP_VAR_DIR/pmcd/root.socket; 0660 with group PCP_GROUP when
that group exists (a name or a number), else 0600 root.

/etc/pcp.conf
PCP_VAR_DIR, PCP_USER and PCP_GROUP, unless set in the environment
($PCP_CONF names another file).

/etc/rootd/rootd.conf
the configuration file (TOML), shared with rootctl; --config names another.
Top-level keys socket and engines; a section per engine ([docker],
[containerd], [cri], [podman], [lxc], [static]) whose keys are the engine's
flags less its name (host in [docker] is --docker-host); [rootd] whose keys
are rootd's other flags by their long names (log-file for -l). Lists are
TOML arrays, durations strings ("5s"). A command-line flag wins over the
file, the file over the environment (DOCKER_HOST, CONTAINERD_ADDRESS,
PCP_*), the environment over the default. An unknown key, a bad value or an
absent --config file stops rootd with exit status 2; the [rootctl] section
is rootctl's and is skipped. The packages install a commented default.

/etc/pcp/pmcd/pmcd.conf
pmcd's agents; its "root" line makes pmcd start pmdaroot, which must not run
beside rootd. rootd-switch enable comments it out (with a backup) and
rootd-switch disable restores it.

/lib/systemd/system/rootd.service
the unit; enabling it is left to rootd-switch enable.

/usr/share/doc/rootd/operations.md
installing, upgrading, running in a container and in Kubernetes.`},
				{Heading: "Notes", Body: `pmcd and PCP's collectors connect to the socket once, at start-up: after
restarting rootd, restart pmcd too.`},
			},
			SeeAlso: []string{"rootctl(1)", "pmcd(1)", "pmdaroot(1)", "logrotate(8)", "systemctl(1)"},
		},
		{
			Name: "rootctl", Section: "1", Manual: "User Commands",
			Summary: "ask rootd (or PCP's pmdaroot) about containers",
			After: []manpage.Section{
				{Heading: "Examples", Body: `  rootctl pid web1
  rootctl cgroup default/web-0/nginx
  rootctl hostname --pid 4242
  rootctl ls -o wide --filter engine=docker --filter state=running
  rootctl ls -q --filter label=io.kubernetes.pod.namespace=kube-system
  rootctl resolve -o json web1
  rootctl status
  sudo rootctl --in-process ls -o json`},
				{Heading: "Files", Body: `/var/lib/pcp/pmcd/root.socket
the root socket ($PCP_VAR_DIR/pmcd/root.socket; -s overrides it).

/etc/rootd/rootd.conf
the configuration file shared with rootd (see rootd(8)): rootctl reads
socket, engines, the engines' sections and [rootctl] timeout, and skips
[rootd]. --config names another file; --config /dev/null reads none.

/usr/share/bash-completion/completions/rootctl,
/usr/share/zsh/vendor-completions/_rootctl (Red Hat:
/usr/share/zsh/site-functions/_rootctl),
/usr/share/fish/vendor_completions.d/rootctl.fish
shell completion, as rootctl completion bash|zsh|fish prints it.`},
			},
			SeeAlso: []string{"rootd(8)", "pmcd(1)"},
		},
	}
}
