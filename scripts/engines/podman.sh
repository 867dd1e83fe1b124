#!/bin/sh
# Prepare a fresh Debian 12 machine (as root) to run Podman containers for
# rootd's live tests. Idempotent: every step checks before it changes anything.
#
#  - installs podman, busybox-static and catatonit when missing (podman builds
#    a pod's infra "pause" image from catatonit; apt may skip Recommends);
#  - sets default_ulimits in /etc/containers/containers.conf, because podman's
#    default open-files limit exceeds the hard limit of the test machines;
#  - imports a one-binary busybox image as localhost/bb:latest (no registry is
#    reachable, so nothing can be pulled).
set -eu

IMAGE=localhost/bb:latest
CONF=/etc/containers/containers.conf
ULIMITS='default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]'

if [ "$(id -u)" -ne 0 ]; then
	echo "podman.sh: must run as root" >&2
	exit 1
fi

missing=""
command -v podman >/dev/null 2>&1 || missing="$missing podman"
[ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || missing="$missing busybox-static"
command -v catatonit >/dev/null 2>&1 || [ -x /usr/libexec/podman/catatonit ] || missing="$missing catatonit"
if [ -n "$missing" ]; then
	# A fresh machine has no package lists yet; refresh once before installing.
	if ! apt-cache show podman >/dev/null 2>&1 || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$')" ]; then
		apt-get update -q
	fi
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

mkdir -p /etc/containers
if [ ! -f "$CONF" ]; then
	printf '[containers]\n%s\n' "$ULIMITS" >"$CONF"
elif ! grep -q '^[[:space:]]*default_ulimits[[:space:]]*=' "$CONF"; then
	if grep -q '^[[:space:]]*\[containers\][[:space:]]*$' "$CONF"; then
		# Insert the key right after the [containers] table header.
		tmp=$(mktemp "$CONF.XXXXXX")
		awk -v line="$ULIMITS" '{ print } /^[[:space:]]*\[containers\][[:space:]]*$/ && !done { print line; done = 1 }' "$CONF" >"$tmp"
		chmod 644 "$tmp"
		mv "$tmp" "$CONF"
	else
		printf '\n[containers]\n%s\n' "$ULIMITS" >>"$CONF"
	fi
else
	echo "podman.sh: $CONF already sets default_ulimits; left as is" >&2
fi

if ! podman image exists "$IMAGE"; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/root/bin"
	cp /bin/busybox "$work/root/bin/busybox"
	for applet in sh sleep hostname cat ls ps; do
		ln -s busybox "$work/root/bin/$applet"
	done
	tar -C "$work/root" -cf "$work/bb.tar" .
	podman import "$work/bb.tar" "$IMAGE" >/dev/null
fi

podman image exists "$IMAGE"
echo "podman.sh: podman $(podman version --format '{{.Client.Version}}'), image $IMAGE ready"
