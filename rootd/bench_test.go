package rootd

import (
	"context"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
)

// BenchmarkServerProcessID measures one PROCESSID round trip through the
// whole server (socket, session, fake resolver, reply), sequentially.
func BenchmarkServerProcessID(b *testing.B) {
	path := filepath.Join(b.TempDir(), "root.socket")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Config{Log: discardLog(), Resolver: &fakeResolver{release: make(chan struct{})}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	c, err := client.Connect(cctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := c.ProcessID(cctx, "web1"); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time (client and server: one process) is steadier than wall
	// time on a loaded machine.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
