#!/bin/sh
# Prepare a fresh Debian 12 machine (as root) to run Docker containers for
# rootd's live tests. Idempotent: every step checks before it changes anything.
#
#  - installs docker.io and busybox-static when missing;
#  - starts dockerd in the background unless a daemon already answers, with
#    --iptables=false --bridge=none so that it does not depend on the host's
#    firewall (tests run containers with --network none);
#  - waits until the daemon answers (DOCKER_WAIT seconds, default 60);
#  - imports a one-binary busybox image as bb:latest (no registry is
#    reachable, so nothing can be pulled).
#
# Log of a dockerd started here: $LOG_DIR/dockerd.log.
set -eu

IMAGE=bb:latest
LOG_DIR=${LOG_DIR:-/var/log/rootd-ci}
WAIT=${DOCKER_WAIT:-60}

if [ "$(id -u)" -ne 0 ]; then
	echo "docker.sh: must run as root" >&2
	exit 1
fi

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
dpkg -s busybox-static >/dev/null 2>&1 && [ -x /bin/busybox ] || missing="$missing busybox-static"
if [ -n "$missing" ]; then
	# A fresh machine has no package lists yet; refresh once before installing.
	if ! apt-cache show docker.io >/dev/null 2>&1 || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$')" ]; then
		apt-get update -q
	fi
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

# Debian's CLI matches Debian's dockerd; a newer one elsewhere on PATH also
# works (it negotiates the API version) but is a second variable.
if [ -x /usr/bin/docker ]; then
	DOCKER=/usr/bin/docker
else
	DOCKER=docker
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
	mkdir -p "$LOG_DIR"
	if pgrep -x dockerd >/dev/null 2>&1; then
		echo "docker.sh: dockerd is running but does not answer yet; waiting" >&2
	else
		# setsid: the daemon must outlive this script and its session.
		setsid dockerd --iptables=false --bridge=none >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
		echo "docker.sh: started dockerd (pid $!), log $LOG_DIR/dockerd.log" >&2
	fi
	i=0
	until "$DOCKER" info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt "$((WAIT * 2))" ]; then
			echo "docker.sh: dockerd did not answer within ${WAIT}s; last log lines:" >&2
			tail -n 20 "$LOG_DIR/dockerd.log" >&2 || true
			exit 1
		fi
		sleep 0.5
	done
fi

if ! "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/r/bin"
	cp /bin/busybox "$work/r/bin/"
	for a in sh sleep hostname cat; do
		ln -s busybox "$work/r/bin/$a"
	done
	tar -C "$work/r" -cf "$work/bb.tar" .
	"$DOCKER" import "$work/bb.tar" "$IMAGE" >/dev/null
	echo "docker.sh: imported $IMAGE" >&2
fi

"$DOCKER" version --format 'docker.sh: dockerd {{.Server.Version}}, API {{.Server.APIVersion}}' >&2
