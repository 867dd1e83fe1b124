package pmda

import (
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
)

// Domain is the root PMDA's domain number in pmcd.conf.
const Domain = 1

// ContainersInDom is instance domain 1.0: one instance per container.
var ContainersInDom = InDom(Domain, 0)

// Metric is one exported metric: descriptor, name and help.
type Metric struct {
	Name    string
	Desc    Desc
	OneLine string
	Help    string
	// value returns the value for one container, or ok false for none.
	value func(c *resolver.Listed) (v Value, ok bool)
}

func strMetric(f func(c *resolver.Listed) (string, bool)) func(c *resolver.Listed) (Value, bool) {
	return func(c *resolver.Listed) (Value, bool) {
		s, ok := f(c)
		return Value{Str: s, IsText: true}, ok
	}
}

func u32Metric(f func(c *resolver.Listed) (uint32, bool)) func(c *resolver.Listed) (Value, bool) {
	return func(c *resolver.Listed) (Value, bool) {
		v, ok := f(c)
		return Value{U32: v}, ok
	}
}

func bit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// running is true for a container with an init process rootd can see.
func running(c *resolver.Listed) bool { return c.State.HasProcess() && c.PID > 0 }

// DisplayName is what containers.name reports: engine.DisplayName, or
// "?" for a container with no name, as pmdaroot does.
func DisplayName(c engine.Container) string {
	if n := engine.DisplayName(c.Names, c.Labels); n != "" {
		return n
	}
	return "?"
}

// Metrics is the metric table, in PMID order: the descriptors are
// pmdaroot's (PCP 6.0, src/pmdas/root), the help text is rootd's own.
var Metrics = []Metric{
	{
		Name:    "containers.engine",
		Desc:    Desc{PMID: PMID(Domain, 0, 0), Type: TypeString, InDom: ContainersInDom, Sem: SemDiscrete},
		OneLine: "container engine that runs each container",
		Help: `The runtime through which rootd knows the container: docker, podman,
containerd or lxc (or static, for a list read from a file). A container
that two engines report (a Docker container in containerd's "moby"
namespace, when rootd is told not to skip it) is one instance, reported
under the engine rootd consults first.`,
		value: strMetric(func(c *resolver.Listed) (string, bool) { return c.Engine, true }),
	},
	{
		Name:    "containers.name",
		Desc:    Desc{PMID: PMID(Domain, 0, 1), Type: TypeString, InDom: ContainersInDom, Sem: SemInstant},
		OneLine: "human-readable name of each container",
		Help: `The name people use for the container (docker ps, podman ps, lxc-ls),
without Docker's leading slash. A Kubernetes container that has no name
of its own (containerd) or only its name within its pod (the CRI) shows
NAMESPACE/POD/CONTAINER from its Kubernetes labels; one with neither
shows "?". Any of these names can
be given to pminfo --container.`,
		value: strMetric(func(c *resolver.Listed) (string, bool) { return DisplayName(c.Container), true }),
	},
	{
		Name:    "containers.pid",
		Desc:    Desc{PMID: PMID(Domain, 0, 2), Type: TypeU32, InDom: ContainersInDom, Sem: SemInstant},
		OneLine: "host process ID of each container's init process",
		Help: `The process ID, as the host sees it, of the first process of the
container: the one whose namespaces and cgroup are the container's. There
is no value for a container that is not running or paused.`,
		value: u32Metric(func(c *resolver.Listed) (uint32, bool) { return uint32(c.PID), running(c) }),
	},
	{
		Name:    "containers.state.running",
		Desc:    Desc{PMID: PMID(Domain, 0, 3), Type: TypeU32, InDom: ContainersInDom, Sem: SemInstant},
		OneLine: "1 if the container is running, else 0",
		Help: `1 while the container's processes are running (not paused), else 0.
Created, exited and dead containers are 0 in all three state metrics.`,
		value: u32Metric(func(c *resolver.Listed) (uint32, bool) {
			return bit(c.State == engine.StateRunning), true
		}),
	},
	{
		Name:    "containers.state.paused",
		Desc:    Desc{PMID: PMID(Domain, 0, 4), Type: TypeU32, InDom: ContainersInDom, Sem: SemInstant},
		OneLine: "1 if the container is paused (frozen), else 0",
		Help: `1 while the container's processes are frozen by its engine (docker
pause, podman pause, lxc-freeze, a paused containerd task), else 0.`,
		value: u32Metric(func(c *resolver.Listed) (uint32, bool) {
			return bit(c.State == engine.StatePaused), true
		}),
	},
	{
		Name:    "containers.state.restarting",
		Desc:    Desc{PMID: PMID(Domain, 0, 5), Type: TypeU32, InDom: ContainersInDom, Sem: SemInstant},
		OneLine: "1 if the engine is restarting the container, else 0",
		Help: `1 while the engine is between stopping the container and starting it
again under its restart policy, else 0.`,
		value: u32Metric(func(c *resolver.Listed) (uint32, bool) {
			return bit(c.State == engine.StateRestarting), true
		}),
	},
	{
		Name:    "containers.cgroup",
		Desc:    Desc{PMID: PMID(Domain, 0, 6), Type: TypeString, InDom: ContainersInDom, Sem: SemDiscrete},
		OneLine: "cgroup path of each container's init process",
		Help: `The cgroup of the container's init process, read from /proc/PID/cgroup
(the memory controller's line on cgroup v1 and hybrid hosts, the unified
line on pure cgroup v2), without the leading slash: docker/ID,
system.slice/docker-ID.scope, libpod_parent/libpod-ID, lxc.payload.NAME,
NAMESPACE/ID, ... It is the path pmdaproc filters processes by. There is
no value for a container that is not running or paused.`,
		value: strMetric(func(c *resolver.Listed) (string, bool) { return c.Cgroup, running(c) && c.Cgroup != "" }),
	},
}

// InDomOneLine and InDomHelp describe instance domain 1.0.
const (
	InDomOneLine = "containers of every engine rootd knows"
	InDomHelp    = `One instance per container of every engine rootd watches (Docker, Podman,
containerd, LXC), running or not. The instance name is the container's ID
(for LXC, its name). When two containerd namespaces hold the same ID, the
container seen first keeps the bare ID and the other is named
NAMESPACE/ID. An instance number belongs to one container for as long as
it exists and is never given to another while rootd runs.`
)

// metricByPMID finds a metric of the table.
func metricByPMID(pmid uint32) *Metric {
	if pmid>>22&0x1ff != Domain || pmid>>10&0xfff != 0 {
		return nil
	}
	item := int(pmid & 0x3ff)
	if item >= len(Metrics) {
		return nil
	}
	return &Metrics[item]
}
