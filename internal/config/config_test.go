package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/cli"
)

// program builds a flag set like rootd's: shared flags, its own, and one
// fake engine's, registered the way engine.Configure does it.
func program(t *testing.T) (*flag.FlagSet, Schema, *values) {
	t.Helper()
	v := &values{}
	fs := flag.NewFlagSet("rootd", flag.ContinueOnError)
	fs.StringVar(&v.socket, "s", "/default.sock", "")
	fs.Var(&v.engines, "engines", "")
	fs.StringVar(&v.level, "log-level", "info", "")
	fs.StringVar(&v.logFile, "l", "", "")
	fs.BoolVar(&v.pmda, "pmda", false, "")
	fs.DurationVar(&v.timeout, "request-timeout", 5*time.Second, "")
	fs.IntVar(&v.conns, "max-connections", 1024, "")
	fs.Var(&v.addrs, "fake-address", "")
	fs.StringVar(&v.host, "fake-host", "", "")
	fs.StringVar(&v.plain, "plainflag", "", "")
	return fs, Schema{
		Program: "rootd",
		Others:  []string{"rootctl"},
		Top:     map[string]string{"socket": "s", "engines": "engines"},
		Section: map[string]string{"log-level": "log-level", "log-file": "l", "pmda": "pmda",
			"request-timeout": "request-timeout", "max-connections": "max-connections"},
		Engines: EngineKeys([]engine.Driver{fakeDriver}),
	}, v
}

type values struct {
	socket, level, logFile, host, plain string
	engines, addrs                      cli.List
	pmda                                bool
	timeout                             time.Duration
	conns                               int
}

var fakeDriver = engine.Driver{Name: "fake", Configure: func(fs *flag.FlagSet) engine.OpenFunc {
	var l cli.List
	fs.Var(&l, "fake-address", "")
	fs.String("fake-host", "", "")
	fs.String("plainflag", "", "") // no "fake-" prefix: keeps its name
	return nil
}}

func TestParseAndApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		text    string
		args    []string // command line, parsed before the file is applied
		check   func(*values) bool
		wantErr string // substring; "" means success
	}{
		{name: "empty file", text: "", check: func(v *values) bool { return v.socket == "/default.sock" && v.level == "info" }},
		{name: "top-level keys", text: "socket = \"/s\"\nengines = [\"docker\", \"lxc\"]\n",
			check: func(v *values) bool { return v.socket == "/s" && v.engines.String() == "docker,lxc" }},
		{name: "own section, every scalar type", text: "[rootd]\nlog-level = \"debug\"\nlog-file = \"/var/log/r\"\npmda = true\nrequest-timeout = \"2s\"\nmax-connections = 7\n",
			check: func(v *values) bool {
				return v.level == "debug" && v.logFile == "/var/log/r" && v.pmda && v.timeout == 2*time.Second && v.conns == 7
			}},
		{name: "engine section maps to the engine's flags", text: "[fake]\nhost = \"tcp://h\"\naddress = [\"/a\", \"/b\"]\nplainflag = \"p\"\n",
			check: func(v *values) bool { return v.host == "tcp://h" && v.addrs.String() == "/a,/b" && v.plain == "p" }},
		{name: "inline table", text: "fake = { host = \"x\" }\n", check: func(v *values) bool { return v.host == "x" }},
		{name: "the command line wins", text: "socket = \"/file\"\n[rootd]\nlog-level = \"debug\"\n", args: []string{"-s", "/flag"},
			check: func(v *values) bool { return v.socket == "/flag" && v.level == "debug" }},
		{name: "a repeated flag on the command line replaces the file's list", text: "engines = [\"docker\"]\n", args: []string{"--engines", "lxc"},
			check: func(v *values) bool { return v.engines.String() == "lxc" }},
		{name: "the other program's section is accepted and skipped", text: "[rootctl]\ntimeout = \"3s\"\nanything = 1\n",
			check: func(v *values) bool { return v.socket == "/default.sock" }},
		{name: "unknown top-level key", text: "socket = \"/s\"\nsockett = \"/t\"\n", wantErr: `test.conf: unknown key "sockett"`},
		{name: "unknown key in own section", text: "[rootd]\nlog-levle = \"x\"\n", wantErr: `unknown key "rootd.log-levle"`},
		{name: "unknown engine key", text: "[fake]\nhots = \"x\"\n", wantErr: `unknown key "fake.hots"`},
		{name: "unknown section", text: "[dockr]\nhost = \"x\"\n", wantErr: `unknown section [dockr]`},
		{name: "the first mistake in file order is named", text: "zzz = 1\naaa = 2\n", wantErr: `"zzz"`},
		{name: "a program's flag at top level is not shared", text: "log-level = \"debug\"\n", wantErr: `unknown key "log-level"`},
		{name: "array for a one-value flag", text: "socket = [\"/a\", \"/b\"]\n", wantErr: `key "socket" takes one value, not an array`},
		{name: "bad value is the flag's own error", text: "[rootd]\nrequest-timeout = \"soon\"\n", wantErr: `key "rootd.request-timeout": parse error`},
		{name: "wrong type for a number flag", text: "[rootd]\nmax-connections = \"many\"\n", wantErr: `key "rootd.max-connections"`},
		{name: "table in an array", text: "engines = [{a = 1}]\n", wantErr: `element 1: want a string`},
		{name: "datetime", text: "socket = 1979-05-27T07:32:00Z\n", wantErr: `want a string, number or boolean`},
		{name: "syntax error has the line", text: "socket = \"/s\"\nengines = = 1\n", wantErr: "test.conf: line 2:"},
		{name: "nested section", text: "[rootd.extra]\na = 1\n", wantErr: `unknown section [rootd.extra]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, schema, v := program(t)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			f, err := Parse("test.conf", tc.text, schema)
			if err == nil {
				err = f.Apply(StdFlags(fs))
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(v) {
				t.Fatalf("values after applying: %+v", *v)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, schema, _ := program(t)
	missing := filepath.Join(t.TempDir(), "rootd.conf")
	f, err := Load(missing, false, schema)
	if err != nil || len(f.Settings) != 0 {
		t.Fatalf("default file absent: %+v, %v; want an empty configuration", f, err)
	}
	if _, err := Load(missing, true, schema); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("--config file absent: %v; want ErrNotExist naming the file", err)
	}
	// A directory is a file that cannot be read, default or not.
	if _, err := Load(t.TempDir(), false, schema); err == nil {
		t.Fatal("reading a directory as the configuration succeeded")
	}
}

func TestLoadReadsTheFile(t *testing.T) {
	fset, schema, v := program(t)
	path := filepath.Join(t.TempDir(), "rootd.conf")
	if err := os.WriteFile(path, []byte("socket = \"/from/file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, false, schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(StdFlags(fset)); err != nil || v.socket != "/from/file" {
		t.Fatalf("socket %q, err %v", v.socket, err)
	}
}

// The schema's keys must exist as flags: a mistake there is reported, not
// skipped.
func TestApplyUnknownFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f, err := Parse("t.conf", "socket = \"/s\"\n", Schema{Program: "x", Top: map[string]string{"socket": "no-such-flag"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(StdFlags(fs)); err == nil || !strings.Contains(err.Error(), "no flag --no-such-flag") {
		t.Fatalf("err = %v", err)
	}
}

// Every registered engine's flags become keys of its section, the engine's
// name taken off.
func TestEngineKeysOfTheBuiltins(t *testing.T) {
	keys := EngineKeys([]engine.Driver{fakeDriver})
	want := map[string]string{"address": "fake-address", "host": "fake-host", "plainflag": "plainflag"}
	if len(keys["fake"]) != len(want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	for k, f := range want {
		if keys["fake"][k] != f {
			t.Errorf("key %s -> %q, want %q", k, keys["fake"][k], f)
		}
	}
}

// LoadTrusted asks trust before reading anything and reads the path it
// returns; a refusal names the file; /dev/null is no file, never vetted.
func TestLoadTrusted(t *testing.T) {
	schema := Schema{Program: "rootd", Top: map[string]string{"socket": "s"}}
	dir := t.TempDir()
	real := filepath.Join(dir, "real.conf")
	if err := os.WriteFile(real, []byte("socket = \"/x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asked := 0
	trustTo := func(path string, err error) func(string) (string, error) {
		return func(string) (string, error) { asked++; return path, err }
	}
	f, err := LoadTrusted("/etc/named.conf", true, schema, trustTo(real, nil))
	if err != nil || len(f.Settings) != 1 || f.Path != "/etc/named.conf" {
		t.Fatalf("trusted: %+v, %v", f, err)
	}
	refused := errors.New("owned by uid 65534")
	if _, err := LoadTrusted(real, false, schema, trustTo("", refused)); !errors.Is(err, refused) || !strings.Contains(err.Error(), real+" refused") {
		t.Fatalf("refused: %v", err)
	}
	missing := &fs.PathError{Op: "open", Path: "/etc/rootd", Err: fs.ErrNotExist}
	if f, err := LoadTrusted(real, false, schema, trustTo("", missing)); err != nil || f.Path != "" {
		t.Fatalf("absent default: %+v, %v", f, err)
	}
	if _, err := LoadTrusted(real, true, schema, trustTo("", missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent --config: %v", err)
	}
	asked = 0
	for _, explicit := range []bool{false, true} {
		if f, err := LoadTrusted(os.DevNull, explicit, schema, trustTo("", refused)); err != nil || f.Path != "" || len(f.Settings) != 0 {
			t.Fatalf("/dev/null: %+v, %v", f, err)
		}
	}
	if asked != 0 {
		t.Errorf("/dev/null was vetted %d times", asked)
	}
}
