#!/bin/sh
# Sets up this machine (scripts/setup.sh) and runs every test: go vet,
# staticcheck, govulncheck against a pinned offline vulnerability database,
# the unit tests (which replay the fuzz targets' seed corpora) and the live
# integration tests (Docker, Podman, containerd, LXC and PCP's C client
# library), all with the race detector. Run as root.
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

echo "== unit tests"
go test -race -count=1 ./...

echo "== integration tests (live engines, PCP's C client)"
# One package at a time: the live tests share the machine's engines.
go test -race -count=1 -p 1 -timeout 15m -tags integration ./integration/ -v 2>&1 | tee /tmp/rootd-integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' || true
# The tee above keeps the full log; the exit status comes from the summary.
tail -n 1 /tmp/rootd-integration.log | grep -q '^ok' || { echo "integration tests failed; full log: /tmp/rootd-integration.log" >&2; tail -n 60 /tmp/rootd-integration.log >&2; exit 1; }
