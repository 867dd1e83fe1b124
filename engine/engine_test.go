package engine

import (
	"context"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestShortID(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	tests := []struct{ id, want string }{
		{hex, hex[:12]},
		{"web1", "web1"},
		{"rootd-mx-20816-212071-lxc-run", "rootd-mx-20816-212071-lxc-run"},
		{strings.ToUpper(hex), strings.ToUpper(hex)},
		{hex[:63] + "g", hex[:63] + "g"},
	}
	for _, tc := range tests {
		if got := (Container{ID: tc.id}).ShortID(); got != tc.want {
			t.Errorf("ShortID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestAmbiguousError(t *testing.T) {
	err := error(&AmbiguousError{Query: "ab", Candidates: []Container{
		{Engine: "docker", ID: "ab1", Names: []string{"web"}},
		{Engine: "podman", ID: "ab2"},
	}})
	if !errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is mismatch for %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "docker:ab1 (web)") || !strings.Contains(msg, "podman:ab2") {
		t.Errorf("message does not name the candidates: %s", msg)
	}
}

type nullEngine struct{ name string }

func (e nullEngine) Name() string                              { return e.name }
func (e nullEngine) List(context.Context) ([]Container, error) { return nil, nil }

func TestRegistry(t *testing.T) {
	name := "test-registry-engine"
	var gotFlag *string
	t.Cleanup(func() { unregister(name) })
	Register(Driver{Name: name, Summary: "for tests", Configure: func(fs *flag.FlagSet) OpenFunc {
		gotFlag = fs.String(name+"-opt", "", "")
		return func(env Env) (Engine, error) {
			if env.Log == nil || env.Getenv == nil {
				t.Error("Open did not fill in Env defaults")
			}
			return nullEngine{name}, nil
		}
	}})
	func() {
		defer func() {
			if recover() == nil {
				t.Error("registering a name twice did not panic")
			}
		}()
		Register(Driver{Name: name, Configure: func(*flag.FlagSet) OpenFunc { return nil }})
	}()
	if _, ok := Lookup(name); !ok {
		t.Fatal("Lookup does not find the driver")
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	set := Configure(fs)
	if err := fs.Parse([]string{"-" + name + "-opt", "v"}); err != nil || *gotFlag != "v" {
		t.Fatalf("engine flag not declared: %v", err)
	}
	engines, err := set.Open(Env{}, []string{name, name})
	if err != nil || len(engines) != 1 || engines[0].Name() != name {
		t.Fatalf("Open = %v, %v; want the engine once", engines, err)
	}
	if _, err := set.Open(Env{}, []string{"no-such-engine"}); err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("unknown engine: %v; want an error listing the known ones", err)
	}
}

// TestOpenOrdersByPrecedence: Open returns engines highest precedence first
// (then by name), whatever order they were asked for in, because that order
// decides whose view of a shared container answers.
func TestOpenOrdersByPrecedence(t *testing.T) {
	drivers := []Driver{
		{Name: "test-low", Precedence: 1},
		{Name: "test-high-b", Precedence: 9},
		{Name: "test-high-a", Precedence: 9},
		{Name: "test-mid", Precedence: 5},
	}
	for _, d := range drivers {
		name := d.Name
		d.Configure = func(*flag.FlagSet) OpenFunc {
			return func(Env) (Engine, error) { return nullEngine{name}, nil }
		}
		Register(d)
		t.Cleanup(func() { unregister(name) })
	}
	set := Configure(flag.NewFlagSet("t", flag.ContinueOnError))
	engines, err := set.Open(Env{}, []string{"test-low", "test-mid", "test-high-b", "test-high-a"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range engines {
		got = append(got, e.Name())
	}
	if want := []string{"test-high-a", "test-high-b", "test-mid", "test-low"}; !slices.Equal(got, want) {
		t.Fatalf("Open order %v, want %v", got, want)
	}
}

func TestCgroupMatches(t *testing.T) {
	tests := []struct {
		path  string
		marks []string
		want  bool
	}{
		{"docker/abc", []string{"abc"}, true},
		{"/docker/abc", []string{"abc"}, true},
		{"docker/abc/init.scope", []string{"abc"}, true},
		{"abc", []string{"abc"}, true},
		{"docker/abcd", []string{"abc"}, false},
		{"docker/xabc", []string{"abc"}, false},
		{"docker/ab", []string{"abc"}, false},
		{"system.slice/docker-abc.scope", []string{"abc", "docker-abc.scope"}, true},
		{"system.slice/docker-abc.scope", []string{"abc"}, false},
		{"machine.slice/libpod-conmon-abc.scope", []string{"libpod-abc.scope"}, false},
		{"rootd-test/web", []string{"rootd-test/web"}, true},
		{"x/rootd-test/web/y", []string{"rootd-test/web"}, true},
		{"k8s.io/web", []string{"rootd-test/web"}, false},
		{"rootd-test/webx", []string{"rootd-test/web"}, false},
		{"xrootd-test/web", []string{"rootd-test/web"}, false},
		{"abc/abc", []string{"abc"}, true},
		{"abcabc/abc", []string{"abc"}, true}, // second occurrence is whole
		{"", []string{"abc"}, false},
		{"docker/abc", nil, false},
		{"docker/abc", []string{""}, false},
		{"docker/abc", []string{"/abc"}, false},
		{"docker/abc", []string{"abc/"}, false},
		{"docker//abc", []string{"docker//abc"}, false},
		{"lxc.payload.web", []string{"lxc.payload.web-#"}, true},
		{"lxc.payload.web-1", []string{"lxc.payload.web-#"}, true},
		{"lxc.payload.web-12/init.scope", []string{"lxc.payload.web-#"}, true},
		{"lxc.payload.web-", []string{"lxc.payload.web-#"}, false},
		{"lxc.payload.web-1x", []string{"lxc.payload.web-#"}, false},
		{"lxc.payload.webx", []string{"lxc.payload.web-#"}, false},
		{"lxc.payload.web-1", []string{"lxc.payload.web"}, false},
		{"x", []string{"-#"}, false},
	}
	for _, tt := range tests {
		if got := CgroupMatches(tt.path, tt.marks); got != tt.want {
			t.Errorf("CgroupMatches(%q, %q) = %v, want %v", tt.path, tt.marks, got, tt.want)
		}
	}
	if m := (Container{ID: "abc"}).CgroupMarks(); len(m) != 1 || m[0] != "abc" {
		t.Errorf("default marks = %q, want the ID", m)
	}
}
