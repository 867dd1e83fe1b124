package engine

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestPaths(t *testing.T) {
	noRelative := func(v string) (string, error) {
		v = strings.TrimPrefix(v, "unix://")
		if !strings.HasPrefix(v, "/") {
			return "", errors.New("relative")
		}
		return v, nil
	}
	for _, tc := range []struct {
		name  string
		args  []string
		want  []string
		fails bool
	}{
		{"none", nil, nil, false},
		{"repeated, in order, once each", []string{"-p", "/b", "-p", " /a ", "-p", "/b"}, []string{"/b", "/a"}, false},
		{"normalised by Check", []string{"-p", "unix:///a", "-p", "/a"}, []string{"/a"}, false},
		{"refused by Check", []string{"-p", "a"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Paths{Check: noRelative}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Var(&p, "p", "")
			err := fs.Parse(tc.args)
			if (err != nil) != tc.fails || !slices.Equal(p.List, tc.want) {
				t.Errorf("Parse(%q): %v, %q; want %q (error: %v)", tc.args, err, p.List, tc.want, tc.fails)
			}
			if got := p.String(); got != strings.Join(tc.want, ",") {
				t.Errorf("String() = %q", got)
			}
		})
	}
}
