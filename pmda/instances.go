package pmda

import (
	"cmp"
	"slices"

	"github.com/rootd-project/rootd/resolver"
)

// inst is one container's instance in domain 1.0.
type inst struct {
	num  int32
	name string
	key  string
	c    resolver.Listed
}

// instances keeps the instance domain in step with the index. Numbers are
// handed out in increasing order and never reused, so a number means one
// container for the life of the process; a container keeps its number (and
// name) for as long as the index holds it.
type instances struct {
	next   int32
	gen    uint64
	primed bool
	byKey  map[string]*inst
	byName map[string]*inst
	list   []*inst // by number
	// last is the instance of each entry of the listing update last saw,
	// in the listing's order: while the index generation stays the same,
	// the listing holds the same containers in the same order.
	last []*inst
}

func newInstances() *instances {
	return &instances{byKey: map[string]*inst{}, byName: map[string]*inst{}}
}

// identity of a container across refreshes: the reporting engine, the
// engine's namespace and the ID.
func keyOf(c *resolver.Listed) string {
	return c.Engine + "\x00" + c.Namespace + "\x00" + c.ID
}

// update brings the domain in line with a listing.
func (s *instances) update(gen uint64, listing []resolver.Listed) {
	if s.primed && gen == s.gen && len(listing) == len(s.last) {
		// Same index generation: only values (a cgroup read since) may
		// differ; refresh them in place.
		for i, in := range s.last {
			in.c = listing[i]
		}
		return
	}
	s.gen, s.primed = gen, true
	live := make(map[string]bool, len(listing))
	var fresh []int
	for i := range listing {
		k := keyOf(&listing[i])
		live[k] = true
		if in := s.byKey[k]; in != nil {
			in.c = listing[i]
		} else {
			fresh = append(fresh, i)
		}
	}
	if len(live) != len(s.byKey) || len(fresh) > 0 {
		kept := s.list[:0]
		for _, in := range s.list {
			if live[in.key] {
				kept = append(kept, in)
				continue
			}
			delete(s.byKey, in.key)
			if s.byName[in.name] == in {
				delete(s.byName, in.name)
			}
		}
		clear(s.list[len(kept):])
		s.list = kept
	}
	for _, i := range fresh {
		c := listing[i]
		in := &inst{num: s.next, key: keyOf(&c), c: c}
		s.next++
		in.name = c.ID
		if s.byName[in.name] != nil && c.Namespace != "" {
			in.name = c.Namespace + "/" + c.ID
		}
		if s.byName[in.name] != nil {
			in.name = c.Engine + ":" + in.name
		}
		s.byKey[in.key] = in
		if s.byName[in.name] == nil {
			s.byName[in.name] = in
		}
		s.list = append(s.list, in)
	}
	s.last = s.last[:0]
	for i := range listing {
		s.last = append(s.last, s.byKey[keyOf(&listing[i])])
	}
	// Numbers only grow, so appending keeps the list sorted; this guards
	// against a future change breaking that.
	if !slices.IsSortedFunc(s.list, func(a, b *inst) int { return cmp.Compare(a.num, b.num) }) {
		slices.SortFunc(s.list, func(a, b *inst) int { return cmp.Compare(a.num, b.num) })
	}
}

// byNum finds an instance by number.
func (s *instances) byNum(n int32) *inst {
	i, ok := slices.BinarySearchFunc(s.list, n, func(in *inst, n int32) int { return cmp.Compare(in.num, n) })
	if !ok {
		return nil
	}
	return s.list[i]
}
