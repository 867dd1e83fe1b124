package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
)

func TestFloorServersAnswerThroughTheClient(t *testing.T) {
	for _, tc := range []struct {
		design string
		serve  func(*net.UnixListener) error
	}{
		{"goroutine per connection", serveFloorGoroutines},
		{"epoll loop", serveFloorLoop},
	} {
		t.Run(tc.design, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "floor.socket")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			// The loop owns its thread until the process ends; closing the
			// listener stops its accepting.
			go tc.serve(ln)
			t.Cleanup(func() { ln.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 3 { // several clients, each served in turn
				cl, err := client.Connect(ctx, socket)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				if pid, err := cl.ProcessID(ctx, "any"); err != nil || pid != 1 {
					t.Errorf("ProcessID = %d, %v; want 1", pid, err)
				}
				if name, err := cl.HostName(ctx, "any"); err != nil || name != floorAnswer {
					t.Errorf("HostName = %q, %v; want %q", name, err, floorAnswer)
				}
				if name, err := cl.CgroupName(ctx, "any"); err != nil || name != floorAnswer {
					t.Errorf("CgroupName = %q, %v; want %q", name, err, floorAnswer)
				}
			}
		})
	}
}

func TestFloorOf(t *testing.T) {
	var cells []Cell
	for i, p99 := range []float64{1200, 800, 900} {
		cells = append(cells, Cell{Server: "floor-c", Clients: 64, Run: i,
			R: DriverResult{Requests: 1000, ElapsedS: 1, P50: float64(300 + i), P99: p99}})
	}
	cells = append(cells, Cell{Server: "floor-go", Clients: 64, R: DriverResult{Requests: 1, ElapsedS: 1, P99: 5}})
	f, ok := floorOf(cells, "floor-c", 64)
	want := FloorStats{Runs: 3, P50: 301, P99: 900, Rate: 1000, P99Low: 800, P99High: 1200, Under1ms: 2}
	if !ok || f != want {
		t.Errorf("floorOf = %+v, %v; want %+v", f, ok, want)
	}
	if _, ok := floorOf(cells, "floor-c", 1); ok {
		t.Error("floorOf found a client count that was not measured")
	}
}
