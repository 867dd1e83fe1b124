// Package config reads /etc/rootd/rootd.conf, the one TOML file that rootd
// and rootctl share, so that where the engines are (Docker's host, the
// containerd and CRI sockets, ...) is written once and both programs see the
// same containers.
//
// The file holds no settings of its own: every key names a command-line flag
// of the program reading it, and a value is applied exactly as if it had
// been given on the command line, through the flag's own Set. So a new
// engine's flags are configurable the moment the engine registers them with
// engine.Configure, and each value is checked by the same code that checks
// the flag.
//
// # Layout
//
//	socket = "/var/lib/pcp/pmcd/root.socket"  # top level: both programs
//	engines = ["docker", "containerd"]
//
//	[docker]                                    # an engine's section: both programs;
//	host = "unix:///run/docker.sock"            # key = the flag less "docker-"
//
//	[rootd]                                     # one program's own flags; the
//	log-level = "debug"                         # other program skips the section
//
// # Precedence
//
// A flag on the command line wins over the file, and the file wins over the
// environment (DOCKER_HOST, CONTAINERD_ADDRESS, PCP_*), which wins over the
// built-in default: flag > file > environment > default. The file is the
// deliberate, system-wide statement shared by rootd and rootctl; the
// environment is inherited incidentally (a login shell's DOCKER_HOST for a
// rootless Docker, a unit's Environment=), and letting it override the file
// would make rootctl and rootd disagree about which engines they read — the
// very thing the file exists to prevent. The environment keeps working
// wherever the file says nothing, as before the file existed.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/rootd-project/rootd/engine"
)

// DefaultPath is read when --config is not given; its absence is not an
// error.
const DefaultPath = "/etc/rootd/rootd.conf"

// Repeatable is implemented by flag values that the command line may give
// several times, each adding to the list (--engines, --allow-uid,
// --containerd-address): in the file they take a TOML array, each element
// applied with its own Set. Every other flag takes one scalar, and an array
// for it is an error rather than a silent "last element wins".
type Repeatable interface {
	flag.Value
	Repeatable()
}

// Flags is what Apply needs of a program's flags; adapters exist for the
// standard library's flag.FlagSet (StdFlags) and are easy to write for
// others (rootctl's cobra flags).
type Flags interface {
	// Lookup returns the flag's value, or nil when there is no such flag.
	Lookup(name string) flag.Value
	// Changed reports whether the command line set the flag: the file
	// then leaves it alone.
	Changed(name string) bool
}

// Schema says which keys a program accepts and which flag each one sets.
type Schema struct {
	// Program is the program's name and the section holding its own flags.
	Program string
	// Others are the sections of the other programs sharing the file:
	// accepted and skipped whole (each program checks its own section).
	Others []string
	// Top maps top-level keys, shared by every program, to flag names.
	Top map[string]string
	// Section maps keys of the [Program] section to flag names.
	Section map[string]string
	// Engines maps an engine's section to its keys and their flags (see
	// EngineKeys).
	Engines map[string]map[string]string
}

// EngineKeys maps each registered engine to the keys of its section: its
// flags, as engine.Configure declares them, less the "NAME-" prefix
// ("docker-host" is host in [docker]). A flag without that prefix keeps its
// whole name. Configure is called on a scratch flag set, which binds fresh
// variables and opens nothing.
func EngineKeys(drivers []engine.Driver) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, d := range drivers {
		scratch := flag.NewFlagSet(d.Name, flag.ContinueOnError)
		d.Configure(scratch)
		keys := map[string]string{}
		scratch.VisitAll(func(f *flag.Flag) {
			key := strings.TrimPrefix(f.Name, d.Name+"-")
			keys[key] = f.Name
		})
		out[d.Name] = keys
	}
	return out
}

// ProgramKeys maps a program's own flags to the keys of its section: every
// flag of fs that is not a shared (top-level) one, not an engine's and not
// in skip (--version, --config). A flag named by one letter takes its key
// from aliases ("l" is log-file), or is left out.
func ProgramKeys(fs *flag.FlagSet, s Schema, aliases map[string]string, skip ...string) map[string]string {
	not := map[string]bool{}
	for _, f := range s.Top {
		not[f] = true
	}
	for _, keys := range s.Engines {
		for _, f := range keys {
			not[f] = true
		}
	}
	for _, f := range skip {
		not[f] = true
	}
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if not[f.Name] {
			return
		}
		key := f.Name
		if len(key) == 1 {
			if key = aliases[f.Name]; key == "" {
				return
			}
		}
		out[key] = f.Name
	})
	return out
}

// Setting is one value the file gives one flag.
type Setting struct {
	Key    string   // as written: "docker.host", "socket", "rootd.log-level"
	Flag   string   // the flag it sets
	Values []string // one, or an array's elements in order
	Array  bool     // written as a TOML array
}

// File is a parsed configuration file.
type File struct {
	Path     string // "" when no file was read
	Settings []Setting
}

// Load reads the file at path with schema. With explicit false (path is the
// default, not given with --config) a missing file is an empty
// configuration; with explicit true it is an error. Any other problem — a
// file that cannot be read, bad TOML, a key the program does not know — is an
// error naming the file (and the key).
//
// Path os.DevNull ("--config /dev/null") is no file: an empty
// configuration, whatever /dev/null is.
func Load(path string, explicit bool, schema Schema) (*File, error) {
	return LoadTrusted(path, explicit, schema, nil)
}

// LoadTrusted is Load for a program whose settings grant privileges (rootd
// runs as root, and allow-uid, allow-gid and allow-exec are root-equivalent
// grants): trust, when not nil, vets the path before anything is read and
// returns the path to read (rootd.TrustedFile: a root-owned regular file
// in root-owned directories, none writable by group or others, and its
// canonical path). A refusal is an error naming the file; a file or
// directory that does not exist is, as for Load, no error unless explicit.
func LoadTrusted(path string, explicit bool, schema Schema, trust func(path string) (string, error)) (*File, error) {
	if path == os.DevNull {
		return &File{}, nil
	}
	read := path
	if trust != nil {
		var err error
		read, err = trust(path)
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return &File{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("configuration file %s refused: %w (it must be a regular file owned by root and not writable by group or others, in directories owned by root and not writable by group or others)", path, err)
		}
	}
	data, err := os.ReadFile(read)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	return Parse(path, string(data), schema)
}

// Parse reads TOML text (named path in errors) with schema.
func Parse(path, text string, schema Schema) (*File, error) {
	var doc map[string]any
	md, err := toml.Decode(text, &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &File{Path: path}
	// md.Keys is in file order, so the first mistake reported is the first
	// in the file, the same on every run.
	for _, key := range md.Keys() {
		name := key.String()
		if md.Type(key...) == "Hash" {
			if len(key) == 1 && schema.isSection(key[0]) {
				continue
			}
			return nil, fmt.Errorf("%s: unknown section [%s]%s", path, name, schema.hint())
		}
		if len(key) > 1 && slices.Contains(schema.Others, key[0]) {
			continue // another program's setting: checked by that program
		}
		flagName, ok := schema.flagFor(key)
		if !ok {
			return nil, fmt.Errorf("%s: unknown key %q%s", path, name, schema.hint())
		}
		s := Setting{Key: name, Flag: flagName}
		switch v := lookup(doc, key).(type) {
		case []any:
			s.Array = true
			for i, e := range v {
				str, err := scalar(e)
				if err != nil {
					return nil, fmt.Errorf("%s: key %q, element %d: %w", path, name, i+1, err)
				}
				s.Values = append(s.Values, str)
			}
		default:
			str, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("%s: key %q: %w", path, name, err)
			}
			s.Values = []string{str}
		}
		f.Settings = append(f.Settings, s)
	}
	return f, nil
}

func (s Schema) isSection(name string) bool {
	_, engine := s.Engines[name]
	return name == s.Program || engine || slices.Contains(s.Others, name)
}

func (s Schema) flagFor(key []string) (string, bool) {
	switch len(key) {
	case 1:
		f, ok := s.Top[key[0]]
		return f, ok
	case 2:
		if key[0] == s.Program {
			f, ok := s.Section[key[1]]
			return f, ok
		}
		f, ok := s.Engines[key[0]][key[1]]
		return f, ok
	}
	return "", false
}

// hint lists the sections, so that a misplaced key is easy to move.
func (s Schema) hint() string {
	secs := []string{s.Program}
	secs = append(secs, s.Others...)
	for e := range s.Engines {
		secs = append(secs, e)
	}
	slices.Sort(secs)
	return " (sections: " + strings.Join(secs, ", ") + "; see rootd.conf in docs/operations.md)"
}

func lookup(doc map[string]any, key []string) any {
	var cur any = doc
	for _, k := range key {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// scalar renders a TOML value the way it would be typed after the flag.
// Durations are strings ("30s"), as the flags take them.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, not %T", v)
}

// Apply sets every flag the file names that the command line did not set.
// Errors name the file and the key.
func (f *File) Apply(flags Flags) error {
	for _, s := range f.Settings {
		if flags.Changed(s.Flag) {
			continue // flag > file
		}
		v := flags.Lookup(s.Flag)
		if v == nil {
			// The schema named a flag the program does not have: a
			// programming error, reported rather than ignored.
			return fmt.Errorf("%s: key %q: no flag --%s", f.Path, s.Key, s.Flag)
		}
		if _, ok := v.(Repeatable); s.Array && !ok {
			return fmt.Errorf("%s: key %q takes one value, not an array", f.Path, s.Key)
		}
		for _, val := range s.Values {
			if err := v.Set(val); err != nil {
				return fmt.Errorf("%s: key %q: %w", f.Path, s.Key, err)
			}
		}
	}
	return nil
}

// StdFlags adapts a parsed flag.FlagSet: Changed is true for the flags its
// command line set.
func StdFlags(fs *flag.FlagSet) Flags {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return stdFlags{fs: fs, set: set}
}

type stdFlags struct {
	fs  *flag.FlagSet
	set map[string]bool
}

func (s stdFlags) Lookup(name string) flag.Value {
	if f := s.fs.Lookup(name); f != nil {
		return f.Value
	}
	return nil
}

func (s stdFlags) Changed(name string) bool { return s.set[name] }
