package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"

	"github.com/rootd-project/rootd/wire"
	"golang.org/x/sys/unix"
)

// The zero-work servers answer every container request at once with a fixed
// reply. Measured with the same driver as rootd, they show what the socket,
// libpcp_pmda, the machine's scheduler and a server's design cost before any
// lookup is done: the C event loop (bench/c/floorserver.c), and two Go
// designs, rootd's own (a goroutine per connection on Go's netpoller) and a
// single-threaded epoll loop.

// floorDesigns are the zero-work servers, in table order.
var floorDesigns = []struct{ Server, Short, Title string }{
	{"floor-c", "C epoll loop", "C, one thread, epoll loop (bench/c/floorserver.c)"},
	{"floor-go", "Go goroutine per connection", "Go, a goroutine per connection (rootd's design)"},
	{"floor-go-loop", "Go epoll loop", "Go, one locked thread, epoll loop"},
}

// floorAnswer is the fixed answer every zero-work server gives.
const floorAnswer = "floor"

// floorMain serves the zero-work protocol on a socket until killed.
func floorMain(args []string) int {
	fs := flag.NewFlagSet("rootbench floor", flag.ContinueOnError)
	loop := fs.Bool("loop", false, "serve every client from one locked thread with epoll, instead of a goroutine per connection")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: rootbench floor [-loop] SOCKET")
		return 2
	}
	socket := fs.Arg(0)
	os.Remove(socket)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		log.Print(err)
		return 1
	}
	if *loop {
		err = serveFloorLoop(ln)
	} else {
		err = serveFloorGoroutines(ln)
	}
	log.Print(err)
	return 1
}

// floorReply appends the fixed reply to a container request.
func floorReply(dst []byte, h wire.Header) ([]byte, error) {
	t, ok := h.Type.Reply()
	if !ok || !h.Type.IsContainer() {
		return nil, fmt.Errorf("not a container request: %v", h.Type)
	}
	c := wire.Container{Type: t, PID: 1}
	if h.Type != wire.TypeProcessIDReq {
		c.Name = []byte(floorAnswer)
	}
	return wire.AppendContainer(dst, c)
}

func floorInfo() []byte { return wire.AppendInfo(nil, wire.Info{Features: wire.AllFeatures}) }

func serveFloorGoroutines(ln *net.UnixListener) error {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			in := bufio.NewReaderSize(conn, wire.MaxPDUSize)
			buf := make([]byte, wire.MaxPDUSize)
			out := make([]byte, 0, wire.MaxPDUSize)
			if _, err := conn.Write(floorInfo()); err != nil {
				return
			}
			for {
				h, _, err := wire.ReadPDU(in, buf)
				if err != nil {
					return
				}
				if out, err = floorReply(out[:0], h); err != nil {
					return
				}
				if _, err := conn.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

// serveFloorLoop accepts on a goroutine and serves every client from one
// OS thread blocked in epoll_wait, each ready client one request a round:
// the design of the C floor server, in Go.
func serveFloorLoop(ln *net.UnixListener) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	accepted := make(chan error, 1)
	go func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				accepted <- err
				return
			}
			f, err := conn.File() // a blocking duplicate the loop owns
			conn.Close()
			if err != nil {
				continue
			}
			fd, err := unix.Dup(int(f.Fd()))
			f.Close()
			if err != nil {
				continue
			}
			if _, err := unix.Write(fd, floorInfo()); err != nil {
				unix.Close(fd)
				continue
			}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
				unix.Close(fd)
			}
		}
	}()
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 64)
	in := make([]byte, wire.MaxPDUSize)
	out := make([]byte, 0, wire.MaxPDUSize)
	for {
		select {
		case err := <-accepted:
			return err
		default:
		}
		n, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range events[:n] {
			fd := int(e.Fd)
			// PCP's clients send each request with one send; a short read
			// is a client this zero-work server does not serve.
			k, err := unix.Read(fd, in)
			var h wire.Header
			if err == nil {
				h, err = wire.ParseHeader(in[:k])
			}
			if err == nil && int(h.Length) == k {
				out, err = floorReply(out[:0], h)
			} else if err == nil {
				err = errors.New("partial request")
			}
			if err == nil {
				_, err = unix.Write(fd, out)
			}
			if err != nil {
				unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
				unix.Close(fd)
			}
		}
	}
}
