#!/bin/sh
# Sets up this machine (scripts/setup.sh) and runs every test: go vet,
# staticcheck, govulncheck against a pinned offline vulnerability database,
# a reproducible-build check, the systemd units, the unit tests (which
# replay the fuzz targets' seed corpora) and the live integration tests
# (Docker, Podman, containerd, LXC, PCP's C client library, and PCP's own
# pmcd, agents and tools running on rootd), all with the race detector, then
# the package and image checks. Run as root.
#
#   scripts/test.sh            everything
#   SKIP_SETUP=1 scripts/test.sh   reuse a machine already set up
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
# go.mod needs Go 1.27.3 (go1.26.8's standard library has reachable known
# vulnerabilities); the go command fetches it through the module proxy.
export GOTOOLCHAIN=go1.27.3

if [ "${SKIP_SETUP:-}" != 1 ]; then
	sh scripts/setup.sh
fi

echo "== gofmt"
# The gofmt of the toolchain go.mod asks for, not whichever is on PATH.
unformatted=$("$(go env GOROOT)/bin/gofmt" -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...
go vet -tags integration ./...

echo "== staticcheck"
# The pinned tools and database are built once per machine and cached
# (scripts/tools.sh).
sh scripts/tools.sh
sh scripts/tools.sh staticcheck ./...
sh scripts/tools.sh staticcheck -tags integration ./...

echo "== govulncheck (offline database)"
sh scripts/tools.sh govulncheck ./...

echo "== reproducible build (make, twice, two directories)"
sh scripts/reproducible.sh

echo "== systemd units (dist/)"
# systemd-analyze verify needs no running systemd. The units are checked as
# a switched-over host has them: rootd.service with its drop-in, and a
# stand-in pmcd.service (PCP is not installed here) with rootd's drop-in;
# SYSTEMD_UNIT_PATH makes verify find the drop-in directories. Unknown keys
# and the like are only warnings to verify, so any output is a failure.
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
go build -o "$units/rootd" ./cmd/rootd
cp -r dist/rootd.service dist/rootd.service.d dist/pmcd.service.d "$units/"
sed -i "s|^ExecStart=/usr/local/sbin/rootd|ExecStart=$units/rootd|" "$units/rootd.service"
printf '[Unit]\nDescription=stand-in for PCP pmcd\n[Service]\nType=notify\nExecStart=/bin/true\n' >"$units/pmcd.service"
verify=$(SYSTEMD_UNIT_PATH="$units:" systemd-analyze verify "$units/rootd.service" "$units/pmcd.service" 2>&1) || {
	echo "$verify" >&2
	exit 1
}
if [ -n "$verify" ]; then
	echo "systemd-analyze verify complains:" >&2
	echo "$verify" >&2
	exit 1
fi

echo "== unit tests"
go test -race -count=1 ./...

echo "== integration tests (live engines, PCP's C client)"
# One package at a time: the live tests share the machine's engines.
go test -race -count=1 -p 1 -timeout 30m -tags integration ./integration/ -v 2>&1 | tee /tmp/rootd-integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' || true
# The tee above keeps the full log; the exit status comes from the summary.
tail -n 1 /tmp/rootd-integration.log | grep -q '^ok' || {
	echo "integration tests failed; full log: /tmp/rootd-integration.log" >&2
	# Each failed test's own output, then the log's end (a panic or a
	# timeout is there).
	awk -v keep=300 -f scripts/failed-tests.awk /tmp/rootd-integration.log >&2
	echo "==== end of the log" >&2
	tail -n 60 /tmp/rootd-integration.log >&2
	exit 1
}

echo "== packages (.deb installed and purged, .rpm read), man pages, Kubernetes manifests"
sh scripts/package-test.sh
echo "== the container image run as the DaemonSet runs it, against every engine"
sh scripts/image-test.sh
