#!/bin/sh
# rootd's soak test, on demand (not part of CI; as root): builds bin/rootd and
# bin/rootsoak, sets up the machine's engines (scripts/setup.sh, skipped with
# SKIP_SETUP=1), then runs rootsoak against a real rootd with the live
# engines, passing every argument on. See docs/soak.md.
#
#   sudo scripts/soak.sh                                  the full run
#   sudo SKIP_SETUP=1 scripts/soak.sh -conns 50 -requests 200 -agents 50
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy

if [ "$(id -u)" -ne 0 ]; then
	echo "soak.sh: must run as root (it starts rootd and containers)" >&2
	exit 1
fi
if [ "${SKIP_SETUP:-}" != 1 ]; then
	sh scripts/setup.sh
fi
mkdir -p bin
go build -o bin/rootd ./cmd/rootd
go build -o bin/rootsoak ./cmd/rootsoak
exec bin/rootsoak -rootd bin/rootd "$@"
