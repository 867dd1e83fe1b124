#!/bin/sh
# Prepares a fresh Debian 12 machine (as root) for rootd's tests: every
# package they need in one apt transaction, then each engine's own script,
# which starts its daemon and imports a busybox image (no registry needed).
# Idempotent; safe to run on a machine that has everything already.
set -eu
cd "$(dirname "$0")/.."

say() { echo "setup.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	say "must run as root (it installs packages and starts container engines)"
	exit 1
fi

export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy
if ! command -v go >/dev/null 2>&1; then
	say "no Go toolchain on PATH (expected /usr/local/go)"
	exit 1
fi

# Everything the tests use, installed together (systemd for
# systemd-analyze verify of dist/: Debian 12 installs it by default, and it
# installs without running as init): one apt-get update and one
# install is far faster than each engine script fetching its own.
packages="docker.io containerd podman catatonit lxc lxc-templates busybox-static
	libpcp-pmda3-dev libpcp3-dev libpcp-gui2 pcp-conf gcc libc6-dev util-linux passwd procps systemd"
missing=
for p in $packages; do
	dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086 # the list is meant to split
	apt-get install -y -q --no-install-recommends $missing
fi

# pcp is not a container engine but is set up the same way: the real PCP
# daemons and tools, unpacked privately (never `apt-get install pcp`).
for engine in docker podman containerd lxc pcp; do
	say "engine $engine"
	sh "scripts/engines/$engine.sh"
done

say "Go modules"
go mod download

say "staticcheck, govulncheck and the vulnerability database (cached)"
sh scripts/tools.sh
