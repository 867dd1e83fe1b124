package builtins_test

import (
	"flag"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/builtins"
)

var all = []string{"containerd", "cri", "docker", "lxc", "podman", "static"}

func TestEveryEngineRegistered(t *testing.T) {
	var got []string
	for _, d := range engine.Drivers() {
		got = append(got, d.Name)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("registered %v, want %v", got, all)
	}
}

// TestBuildTagLeavesEngineOut checks, through the go command's own view of
// the build, that each no_ENGINE tag drops exactly that engine's package
// from both programs and keeps the others.
func TestBuildTagLeavesEngineOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	const mod = "github.com/rootd-project/rootd/"
	for _, left := range all {
		t.Run(left, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-tags", "no_"+left, "-deps", mod+"cmd/rootd", mod+"cmd/rootctl").CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			deps := strings.Fields(string(out))
			for _, e := range all {
				has := slices.Contains(deps, mod+"engine/"+e)
				if has == (e == left) {
					t.Errorf("with -tags no_%s: engine/%s linked in = %v", left, e, has)
				}
			}
		})
	}
}

// TestPrecedence pins which built-in engine answers for a container two of
// them see: the runtimes users drive by name before containerd, whose view
// of their containers is the lower-level one.
func TestPrecedence(t *testing.T) {
	set := engine.Configure(flag.NewFlagSet("t", flag.ContinueOnError))
	engines, err := set.Open(engine.Env{Getenv: func(string) string { return "" }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range engines {
		got = append(got, e.Name())
		if c, ok := e.(io.Closer); ok {
			c.Close()
		}
	}
	if want := []string{"cri", "docker", "lxc", "podman", "containerd", "static"}; !slices.Equal(got, want) {
		t.Fatalf("engines open in order %v, want %v", got, want)
	}
}
