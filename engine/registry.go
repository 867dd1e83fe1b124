package engine

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
)

// OpenFunc opens an engine once the program's flags have been parsed.
type OpenFunc func(env Env) (Engine, error)

// Driver describes one kind of engine to the registry.
type Driver struct {
	// Name is what --engines and engine-qualified queries ("docker:web") use.
	Name string
	// Summary is one line for --help.
	Summary string
	// Precedence decides which engine's view answers when two engines
	// report one container (the same ID): the higher one, and between equal
	// precedences the name first in alphabetical order. Engines closest to
	// the user's own tooling rank highest, since their names and labels are
	// the ones users type: see the Precedence constants.
	Precedence int
	// Configure declares the engine's own flags (if any) on fs and returns
	// the function that opens the engine with their parsed values. Each call
	// binds fresh variables, so two flag sets never share state.
	Configure func(fs *flag.FlagSet) OpenFunc
}

// Precedences of the built-in engines. A runtime that manages containers
// through a lower-level one (Docker and Kubernetes' CRI over containerd)
// ranks above it: its view carries the names and labels users know.
const (
	PrecedenceLowLevel  = 10 // containerd: every namespace, IDs as names
	PrecedenceRuntime   = 50 // Docker, Podman, LXC: their own names
	PrecedenceManager   = 90 // CRI: Kubernetes identity over any runtime
	PrecedenceSynthetic = 0  // static: a description, not a runtime
)

// The registry is the only package-level mutable state: it is written from
// init functions and read afterwards.
var (
	registryMu sync.RWMutex
	registry   = map[string]Driver{}
)

// Register makes a driver available by name. It panics if the name is empty,
// Configure is nil, or the name is registered twice, as database/sql does:
// these are programming errors caught on the first run.
func Register(d Driver) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if d.Name == "" || d.Configure == nil {
		panic("engine: Register of an incomplete driver")
	}
	if _, dup := registry[d.Name]; dup {
		panic("engine: Register called twice for " + d.Name)
	}
	registry[d.Name] = d
}

// Drivers returns the registered drivers sorted by name.
func Drivers() []Driver {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Driver, 0, len(registry))
	for _, d := range registry {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the driver registered under name.
func Lookup(name string) (Driver, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	d, ok := registry[name]
	return d, ok
}

// Set is the registered drivers' flags bound to one flag set; after the flag
// set is parsed, Open opens the selected engines.
type Set struct {
	openers    map[string]OpenFunc
	precedence map[string]int
	names      []string
}

// Configure declares every registered driver's flags on fs.
func Configure(fs *flag.FlagSet) *Set {
	s := &Set{openers: map[string]OpenFunc{}, precedence: map[string]int{}}
	for _, d := range Drivers() {
		s.openers[d.Name] = d.Configure(fs)
		s.names = append(s.names, d.Name)
		s.precedence[d.Name] = d.Precedence
	}
	return s
}

// byPrecedence orders engine names highest precedence first, then by name.
func (s *Set) byPrecedence(names []string) []string {
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int {
		if c := s.precedence[b] - s.precedence[a]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

// Names lists the engines this set can open.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Check reports an error for the first name that is not an engine of this
// set, listing the known ones; Open makes the same check. It opens
// nothing, so a configuration can be checked without starting anything.
func (s *Set) Check(names []string) error {
	for _, name := range names {
		if _, ok := s.openers[name]; !ok {
			return fmt.Errorf("unknown engine %q (known: %v)", name, s.names)
		}
	}
	return nil
}

// Open opens the named engines, or every registered engine when names is
// empty, and returns them highest precedence first: the order in which the
// resolver lets one engine's view of a container win over another's. An
// unknown name is an error that lists the known ones.
func (s *Set) Open(env Env, names []string) ([]Engine, error) {
	if len(names) == 0 {
		names = s.names
	}
	if err := s.Check(names); err != nil {
		return nil, err
	}
	names = s.byPrecedence(names)
	if env.Log == nil {
		env.Log = slog.Default()
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	var engines []Engine
	seen := map[string]bool{}
	for _, name := range names {
		open, ok := s.openers[name]
		if !ok {
			return nil, fmt.Errorf("unknown engine %q (known: %v)", name, s.names)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		e, err := open(Env{Log: env.Log.With("engine", name), Getenv: env.Getenv})
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", name, err)
		}
		engines = append(engines, e)
	}
	return engines, nil
}
