package resolver

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rootd-project/rootd/engine"
)

// entry is one container in an index. Entries are immutable except for the
// verification cache, so readers share them without locks.
type entry struct {
	c engine.Container
	// proof caches the verified init process's cgroup path and start time
	// (see verify). A container's init does not change cgroup while it
	// lives, and a new init (restart) makes a new PID and so a new entry
	// without the cache.
	proof atomic.Pointer[proof]
	// warned is set once a verification failure of this container and PID
	// has been logged.
	warned atomic.Bool
}

// entryKey identifies a container within one engine. IDs are unique only
// per namespace: containerd lets two namespaces hold the same ID, and those
// are two containers.
func entryKey(namespace, id string) string {
	if namespace == "" {
		return id
	}
	return namespace + "\x00" + id
}

// same reports whether two entries are one container: the same ID in one
// namespace of one engine, or the same ID in two engines (Docker's
// containers also appear in containerd).
func (e *entry) same(o *entry) bool {
	return e.c.ID == o.c.ID && (e.c.Engine != o.c.Engine || e.c.Namespace == o.c.Namespace)
}

// running reports whether the container has an init process to inspect.
func (e *entry) running() bool { return e.c.State.HasProcess() && e.c.PID > 0 }

// newEntry makes the entry for c, carrying over the verification cache
// from the entry it replaces when the init PID and what the engine says of
// its cgroup are the same.
func newEntry(c engine.Container, old *entry) *entry {
	e := &entry{c: c}
	if old != nil && old.c.PID == c.PID && c.PID > 0 && slices.Equal(old.c.CgroupMarks(), c.CgroupMarks()) {
		if p := old.proof.Load(); p != nil {
			e.proof.Store(p)
		}
		e.warned.Store(old.warned.Load())
	}
	return e
}

// engineIndex is an immutable snapshot of one engine's containers, built on
// every change and swapped in atomically, so lookups take no lock.
type engineIndex struct {
	byID   map[string][]*entry // several only for one ID in several namespaces
	byName map[string][]*entry
	// byPod is keyed by "NAMESPACE/POD/CONTAINER" from the well-known labels.
	byPod map[string][]*entry
	byPID map[int]*entry // running containers only
	// sorted holds every entry ordered by ID, for prefix search.
	sorted []*entry
}

var emptyIndex = &engineIndex{}

func buildIndex(entries map[string]*entry) *engineIndex {
	x := &engineIndex{
		byID:   make(map[string][]*entry, len(entries)),
		byName: make(map[string][]*entry, len(entries)),
		byPod:  map[string][]*entry{},
		byPID:  map[int]*entry{},
		sorted: make([]*entry, 0, len(entries)),
	}
	for _, e := range entries {
		x.byID[e.c.ID] = append(x.byID[e.c.ID], e)
		x.sorted = append(x.sorted, e)
		for _, n := range e.c.Names {
			x.byName[n] = append(x.byName[n], e)
		}
		if key, ok := podKey(e.c.Labels); ok {
			x.byPod[key] = append(x.byPod[key], e)
		}
		if e.running() {
			x.byPID[e.c.PID] = e
		}
	}
	slices.SortFunc(x.sorted, func(a, b *entry) int { return strings.Compare(a.c.ID, b.c.ID) })
	return x
}

func podKey(labels map[string]string) (string, bool) {
	ns, pod, ctr := labels[engine.LabelPodNamespace], labels[engine.LabelPodName], labels[engine.LabelContainerName]
	if ns == "" || pod == "" || ctr == "" {
		return "", false
	}
	return ns + "/" + pod + "/" + ctr, true
}

// isPodQuery reports whether name has the NAMESPACE/POD/CONTAINER shape.
func isPodQuery(name string) bool {
	a, rest, ok := strings.Cut(name, "/")
	if !ok || a == "" {
		return false
	}
	b, c, ok := strings.Cut(rest, "/")
	return ok && b != "" && c != "" && !strings.Contains(c, "/")
}

// prefixMatches returns up to two entries whose ID starts with p: a third
// could not change the answer "ambiguous".
func (x *engineIndex) prefixMatches(p string) (first, second *entry) {
	// Binary search for the first ID >= p, written out so that the hot path
	// makes no closure.
	lo, hi := 0, len(x.sorted)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x.sorted[mid].c.ID < p {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(x.sorted) && strings.HasPrefix(x.sorted[lo].c.ID, p) {
		first = x.sorted[lo]
		if lo+1 < len(x.sorted) && strings.HasPrefix(x.sorted[lo+1].c.ID, p) {
			second = x.sorted[lo+1]
		}
	}
	return first, second
}
