package resolver

import (
	"cmp"
	"slices"

	"github.com/rootd-project/rootd/engine"
)

// Listed is one container of a Listing, with its cgroup path.
type Listed struct {
	engine.Container
	// Cgroup is the init process's cgroup path without its leading slash,
	// as /proc reports it; empty for a container without a process, or
	// whose process could not be inspected.
	Cgroup string
}

// Listing returns every indexed container once, without refreshing and
// without waiting on any engine: a container several engines report (a
// Docker container is also a containerd one) appears once, as the engine
// listed first reports it, while one ID in two containerd namespaces is two
// containers. The order is engine (as given to New), namespace, ID. gen
// changes whenever the index does.
//
// The cgroup path is read from /proc once per init process and cached,
// exactly as CgroupPath answers it.
func (r *Resolver) Listing() (gen uint64, out []Listed) {
	gen = r.gen.Load()
	for i, s := range r.engines {
		x := s.idx.Load()
		start := len(out)
		for _, e := range x.sorted {
			dup := false
			if i > 0 {
				// Only a container of an earlier engine can shadow this one.
				for _, o := range r.earlier(s, e.c.ID) {
					if o.same(e) {
						dup = true
						break
					}
				}
			}
			if dup {
				continue
			}
			l := Listed{Container: e.c}
			if e.running() {
				if p, err := r.entryCgroup(e); err == nil {
					l.Cgroup = p
				}
			}
			out = append(out, l)
		}
		slices.SortStableFunc(out[start:], func(a, b Listed) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.ID, b.ID))
		})
	}
	return gen, out
}

// earlier returns the entries with id of the engines before s.
func (r *Resolver) earlier(s *engineState, id string) []*entry {
	var out []*entry
	for _, o := range r.engines {
		if o == s {
			break
		}
		out = append(out, o.idx.Load().byID[id]...)
	}
	return out
}
