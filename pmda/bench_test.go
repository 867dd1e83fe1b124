package pmda

import (
	"fmt"
	"testing"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
)

// BenchmarkFetchAll is the agent's share of `pminfo -f containers`: one
// FETCH of the seven metrics over n containers (pminfo asks one metric at
// a time; pmlogger asks them together).
func BenchmarkFetchAll(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			src := &fakeSource{gen: 1}
			for i := range n {
				id := fmt.Sprintf("%064x", i)
				src.list = append(src.list, resolver.Listed{
					Container: engine.Container{Engine: "docker", ID: id, Names: []string{fmt.Sprint("c", i)}, PID: 1000 + i, State: engine.StateRunning},
					Cgroup:    "system.slice/docker-" + id + ".scope",
				})
			}
			a := New(discardLogger())
			a.SetSource(src)
			pmids := make([]uint32, len(Metrics))
			for i, m := range Metrics {
				pmids[i] = m.Desc.PMID
			}
			req := fetchPDU(pmids)
			h, _ := ParseHeader(req, MaxRequest)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if r := a.Handle(h, req); len(r) == 0 {
					b.Fatal("no reply")
				}
			}
		})
	}
}

func fetchPDU(pmids []uint32) []byte {
	b := make([]byte, 28+4*len(pmids))
	be.PutUint32(b, uint32(len(b)))
	be.PutUint32(b[4:], uint32(TypeFetch))
	be.PutUint32(b[24:], uint32(len(pmids)))
	for i, id := range pmids {
		be.PutUint32(b[28+4*i:], id)
	}
	return b
}
