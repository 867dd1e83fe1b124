package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/wire"
)

// fakeDaemon answers like rootd with the view requests, from a
// fixed list: names and unique ID prefixes resolve, a name shared by two
// containers is ambiguous, a container without a PID is not running. As
// rootd does (rootd/view.go): LIST carries no hostnames; DESCRIBE of a
// container that is not running answers ESRCH with the container (no
// cgroup, no hostname); candidates carry no cgroup or hostname; a peer
// other than root gets only the Kubernetes identity labels, marked
// labels_redacted.
type fakeDaemon struct {
	peerUID    int // the connecting user, as SO_PEERCRED gives it (runCtl's euid)
	containers []Info
	status     Status
	dialErr    error          // returned by dial
	listErr    error          // returned by List, Describe, DescribePID, Status
	byPID      map[int]string // hostname by PID
	pidErr     map[int]error  // HostNameByPID failures
	dialed     []string       // sockets dialed
	closed     int
}

func (f *fakeDaemon) find(name string) (Info, error) {
	var hits []Info
	for _, c := range f.containers {
		match := strings.HasPrefix(c.ID, name) || c.Engine+":"+c.ID == name
		for _, n := range c.Names {
			match = match || n == name || c.Engine+":"+n == name
		}
		if match {
			hits = append(hits, c)
		}
	}
	switch len(hits) {
	case 0:
		return Info{}, client.ErrNoContainer
	case 1:
		return hits[0], nil
	}
	return Info{}, &AmbiguousError{Name: name, Candidates: hits}
}

// running is what PID, CGROUP and HOSTNAME requests get: wire statuses,
// as the client returns them (no candidates).
func (f *fakeDaemon) running(name string) (Info, error) {
	c, err := f.find(name)
	var amb *AmbiguousError
	if errors.As(err, &amb) {
		return Info{}, wire.StatusError(wire.StatusFromErrno(syscall.ENOTUNIQ))
	}
	if err == nil && c.PID == 0 {
		return Info{}, wire.StatusError(wire.StatusFromErrno(syscall.ESRCH))
	}
	return c, err
}

func (f *fakeDaemon) ProcessID(_ context.Context, name string) (int, error) {
	c, err := f.running(name)
	return c.PID, err
}

func (f *fakeDaemon) CgroupName(_ context.Context, name string) (string, error) {
	c, err := f.running(name)
	return c.Cgroup, err
}

func (f *fakeDaemon) HostName(_ context.Context, name string) (string, error) {
	c, err := f.running(name)
	return c.Hostname, err
}

func (f *fakeDaemon) HostNameByPID(_ context.Context, pid int) (string, error) {
	if err := f.pidErr[pid]; err != nil {
		return "", err
	}
	return f.byPID[pid], nil
}

// view is c as rootd sends it to the peer: labels other than the
// Kubernetes identity for root only, cgroup and hostname when asked for.
func (f *fakeDaemon) view(c Info, cgroup, hostname bool) Info {
	if !cgroup {
		c.Cgroup = ""
	}
	if !hostname {
		c.Hostname = ""
	}
	if f.peerUID != 0 && len(c.Labels) > 0 {
		all := c.Labels
		c.Labels = nil
		for _, k := range publicLabels {
			if v, ok := all[k]; ok {
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[k] = v
			}
		}
		c.LabelsRedacted = len(c.Labels) < len(all)
	}
	return c
}

func (f *fakeDaemon) List(context.Context) ([]Info, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	out := make([]Info, len(f.containers))
	for i, c := range f.containers {
		out[i] = f.view(c, true, false)
	}
	return out, nil
}

func (f *fakeDaemon) Describe(_ context.Context, name string) (Info, error) {
	if f.listErr != nil {
		return Info{}, f.listErr
	}
	c, err := f.find(name)
	var amb *AmbiguousError
	switch {
	case errors.As(err, &amb):
		for i, c := range amb.Candidates {
			amb.Candidates[i] = f.view(c, false, false)
		}
	case err == nil && c.PID == 0:
		return f.view(c, false, false), fmt.Errorf("%w (not running)", wire.StatusError(wire.StatusFromErrno(syscall.ESRCH)))
	case err == nil:
		return f.view(c, true, true), nil
	}
	return Info{}, err
}

func (f *fakeDaemon) DescribePID(_ context.Context, pid int) (Info, error) {
	if f.listErr != nil {
		return Info{}, f.listErr
	}
	for _, c := range f.containers {
		if c.PID == pid {
			return f.view(c, true, true), nil
		}
	}
	return Info{}, client.ErrNoContainer
}

func (f *fakeDaemon) Status(context.Context) (Status, error) { return f.status, f.listErr }

func (f *fakeDaemon) Close() error { f.closed++; return nil }

// result is one rootctl run.
type result struct {
	stdout, stderr string
	code           int
}

// runCtl runs the command tree in-process against f as user euid. The
// host's configuration file is kept out with --config /dev/null unless the
// test names one.
func runCtl(t *testing.T, f *fakeDaemon, euid int, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut)
	a.getenv = func(string) string { return "" }
	a.euid = func() int { return euid }
	f.peerUID = euid
	a.dial = func(_ context.Context, socket string) (daemon, error) {
		f.dialed = append(f.dialed, socket)
		if f.dialErr != nil {
			return nil, f.dialErr
		}
		return f, nil
	}
	hasConfig := false
	for _, s := range args {
		hasConfig = hasConfig || s == "--config" || strings.HasPrefix(s, "--config=")
	}
	if !hasConfig {
		args = append([]string{"--config", "/dev/null"}, args...)
	}
	code := a.run(args)
	return result{out.String(), errOut.String(), code}
}
