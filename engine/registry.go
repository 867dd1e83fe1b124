package engine

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
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
	// Configure declares the engine's own flags (if any) on fs and returns
	// the function that opens the engine with their parsed values. Each call
	// binds fresh variables, so two flag sets never share state.
	Configure func(fs *flag.FlagSet) OpenFunc
}

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
	openers map[string]OpenFunc
	names   []string
}

// Configure declares every registered driver's flags on fs.
func Configure(fs *flag.FlagSet) *Set {
	s := &Set{openers: map[string]OpenFunc{}}
	for _, d := range Drivers() {
		s.openers[d.Name] = d.Configure(fs)
		s.names = append(s.names, d.Name)
	}
	return s
}

// Names lists the engines this set can open.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Open opens the named engines, or every registered engine when names is
// empty. An unknown name is an error that lists the known ones.
func (s *Set) Open(env Env, names []string) ([]Engine, error) {
	if len(names) == 0 {
		names = s.names
	}
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
