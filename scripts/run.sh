#!/bin/sh
# Builds rootd and runs it in the foreground (as root), passing every
# argument on: scripts/run.sh -s /var/lib/pcp/pmcd/root.socket -l /var/log/rootd.log
# Run 'scripts/run.sh --help' for the flags.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy
mkdir -p bin
go build -o bin/rootd ./cmd/rootd
go build -o bin/rootctl ./cmd/rootctl
exec bin/rootd "$@"
