package manpage

import (
	"bytes"
	"flag"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The parser is checked against the flag package's own PrintDefaults, with
// every kind of flag rootd uses, so a layout change in Go fails here.
func TestParseMatchesFlagPackage(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("s", "/var/lib/pcp/pmcd/root.socket", "socket `path`")
	fs.Bool("v", false, "one-letter boolean")
	fs.Bool("version", false, "print the version")
	fs.Duration("timeout", 5*time.Second, "give up after this long")
	fs.Int("n", 3, "a number\nover two lines")
	var l listFlag
	fs.Var(&l, "engines", "comma-separated `engines`")
	var out bytes.Buffer
	fs.SetOutput(&out)
	out.WriteString("Usage: x [flags]\n\nSome text.\n\n  cmd ARG   does it\n\nFlags:\n")
	fs.PrintDefaults()
	out.WriteString("\nTrailing:\n  a  b\n")
	h, err := ParseHelp(out.String())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	fs.VisitAll(func(f *flag.Flag) { want = append(want, f.Name) })
	var got []string
	for _, f := range h.Flags {
		got = append(got, f.Name)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("flags %v, want %v\n%s", got, want, out.String())
	}
	byName := map[string]Flag{}
	for _, f := range h.Flags {
		byName[f.Name] = f
	}
	checks := map[string][2]string{
		"s":       {"path", `socket path (default "/var/lib/pcp/pmcd/root.socket")`},
		"v":       {"", "one-letter boolean"},
		"version": {"", "print the version"},
		"timeout": {"duration", "give up after this long (default 5s)"},
		"n":       {"int", "a number over two lines (default 3)"},
		"engines": {"engines", "comma-separated engines"},
	}
	for name, c := range checks {
		if f := byName[name]; f.Arg != c[0] || f.Usage != c[1] {
			t.Errorf("-%s: arg %q usage %q, want %q %q", name, f.Arg, f.Usage, c[0], c[1])
		}
	}
	if len(h.Intro) != 2 || !h.Intro[1].Pre || len(h.Trailer) != 2 || !h.Trailer[1].Pre {
		t.Errorf("blocks: intro %+v trailer %+v", h.Intro, h.Trailer)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func TestRoffLintClean(t *testing.T) {
	mandoc, err := exec.LookPath("mandoc")
	if err != nil {
		t.Skip("mandoc not installed (apt-get install mandoc)")
	}
	h, err := ParseHelp("Usage: rootd [-s PATH] [flags]\n\nText with --allow-uid and a \\ backslash.\n.dot at start\n\n  ls [--json]   list\n\nFlags:\n  -allow-uid users\n    \talso allow these users\n  -version\n    \tprint\n\nEngines compiled in:\n  docker   Docker\n")
	if err != nil {
		t.Fatal(err)
	}
	p := Page{Name: "rootd", Section: "8", Summary: "PCP's root socket", Date: "2026-12-04", Source: "rootd 0.1.0",
		Manual: "System Manager's Manual", Help: h,
		After:   []Section{{Heading: "Files", Body: "/var/lib/pcp/pmcd/root.socket\n\n  indented"}},
		SeeAlso: []string{"pmcd(1)", "rootctl(1)"}}
	cmd := exec.Command(mandoc, "-T", "lint", "-W", "all")
	cmd.Stdin = strings.NewReader(p.Roff())
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("mandoc -T lint: %v\n%s\n%s", err, out, p.Roff())
	}
}
