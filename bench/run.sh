#!/bin/sh
# The benchmark in one command (as root, on Debian 12): rootd against PCP's
# own pmdaroot, through PCP's real client library. See docs/performance.md.
#
#   sudo bench/run.sh [rootbench flags]      e.g. -sizes 10,100 -fresh-runs 0
#
# It installs what it needs (gcc, libpcp-pmda3-dev, libpcp3-dev, and the
# libraries pmcd links against), extracts the reference pmcd and pmdaroot from
# Debian's pcp package without installing it (its post-install needs
# systemd), sets up and starts the live engines as the tests do
# (scripts/setup.sh: Docker, Podman, containerd, LXC, busybox images) for the
# live and freshness measurements, builds rootd, rootbench and the C
# programs, and runs rootbench. The live measurement starts its own mixed set
# (2 Docker and 1 Podman containers, then 1 LXC container) and removes it.
# ROOTBENCH_NO_ENGINES=1 skips the engines and both live measurements.
# ROOTBENCH_PMDA=1 runs `rootbench pmda` instead: `pminfo -f containers`
# through a private pmcd whose root agent is rootd --pmda, then pmdaroot
# (bench/results/pmda.md; its flags, e.g. -sizes 10,100, follow).
# ROOTBENCH_CRI=1 runs `rootbench cri` instead: the CRI engine with 100
# host-network pods on a private containerd with its CRI plugin (cold and
# steady List, rootd's start-up, lookups; bench/results/cri.md, about 2
# minutes); with ROOTBENCH_RACE=1 rootd and rootbench are built with -race
# (bench/results/cri-race.md). Its flags, e.g. -pods 20, follow.
# The containers the benchmark asks about get init processes of their own in
# cgroups bench-rootbench-PID/docker/<id> (on the hierarchy rootd reads), so
# that rootd's answers pass its PID verification; rootbench removes them.
# The table goes to stdout and bench/results/latest.md, the record to
# bench/results/latest.json, the chart to docs/performance-latency.svg.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: must run as root (it starts a root service and enters namespaces)" >&2
	exit 1
fi

CACHE=${ROOTBENCH_CACHE:-.cache/rootbench}
mkdir -p "$CACHE" bin

missing=""
for p in gcc libc6-dev libpcp-pmda3-dev libpcp3-dev libpcp-web1 pcp-conf; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
updated=""
if [ -n "$missing" ]; then
	apt-get update -q
	updated=1
	# shellcheck disable=SC2086 # a list of packages
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

if [ -n "${ROOTBENCH_CRI:-}" ]; then
	# containerd and the busybox OCI layout the private daemon imports.
	sh scripts/engines/containerd.sh >/dev/null
	race="" out=bench/results/cri
	if [ -n "${ROOTBENCH_RACE:-}" ]; then
		race=-race out=bench/results/cri-race
	fi
	go build $race -o bin/rootd ./cmd/rootd
	go build $race -o bin/rootbench ./cmd/rootbench
	gcc -O2 -Wall -o bin/loaddriver bench/c/loaddriver.c -lpcp_pmda -lpcp -lpthread
	exec bin/rootbench cri -rootd bin/rootd -driver bin/loaddriver -out "$out.md" -json "$out.json" "$@"
fi

# The reference: pmcd and pmdaroot from the pcp package, extracted only.
REF="$CACHE/pcp"
if [ ! -x "$REF/usr/lib/pcp/bin/pmcd" ] || [ ! -x "$REF/usr/lib/pcp/pmdas/root/pmdaroot" ]; then
	[ -n "$updated" ] || apt-get update -q
	rm -rf "$REF" "$CACHE"/pcp_*.deb
	# apt-get download writes into the current directory.
	(cd "$CACHE" && apt-get download pcp)
	dpkg-deb -x "$CACHE"/pcp_*.deb "$REF"
fi
if ldd "$REF/usr/lib/pcp/bin/pmcd" | grep -q 'not found'; then
	echo "bench/run.sh: pmcd is missing libraries:" >&2
	ldd "$REF/usr/lib/pcp/bin/pmcd" | grep 'not found' >&2
	exit 1
fi

if [ -n "${ROOTBENCH_PMDA:-}" ]; then
	go build -o bin/rootd ./cmd/rootd
	go build -o bin/rootbench ./cmd/rootbench
	exec bin/rootbench pmda -rootd bin/rootd -pmcd "$REF/usr/lib/pcp/bin/pmcd" \
		-pmdaroot "$REF/usr/lib/pcp/pmdas/root/pmdaroot" -pminfo "$REF/usr/bin/pminfo" "$@"
fi

live="-live on -live-make"
if [ -z "${ROOTBENCH_NO_ENGINES:-}" ]; then
	sh scripts/setup.sh
else
	live="-live off -fresh-runs 0"
fi

go build -o bin/rootd ./cmd/rootd
go build -o bin/rootbench ./cmd/rootbench
gcc -O2 -Wall -o bin/loaddriver bench/c/loaddriver.c -lpcp_pmda -lpcp -lpthread
gcc -O2 -Wall -o bin/floorserver bench/c/floorserver.c

# shellcheck disable=SC2086 # $live is a list of flags
exec bin/rootbench \
	-rootd bin/rootd -driver bin/loaddriver -floor bin/floorserver \
	-pmcd "$REF/usr/lib/pcp/bin/pmcd" -pmdaroot "$REF/usr/lib/pcp/pmdas/root/pmdaroot" \
	$live "$@"
