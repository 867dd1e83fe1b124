#!/bin/sh
# Sets up a standalone containerd for rootd's live tests on a fresh Debian 12
# (run as root). Idempotent: a daemon that already answers is reused, and the
# image is imported only into namespaces that lack it.
#
# The daemon is private to rootd CI (its own root, state, socket and config),
# so it never disturbs a system containerd or Docker's own containerd, and it
# is left running for the tests. Prints the socket path on its last line.
#
# Environment (all optional):
#   ROOTD_CONTAINERD_ADDRESS  socket   (default /run/rootd-ci/containerd/containerd.sock)
#   ROOTD_CONTAINERD_IMAGE    image    (default docker.io/rootd/bb:latest)
#   ROOTD_CONTAINERD_NAMESPACES        (default "rootd-test k8s.io")
set -eu

SOCK=${ROOTD_CONTAINERD_ADDRESS:-/run/rootd-ci/containerd/containerd.sock}
IMAGE=${ROOTD_CONTAINERD_IMAGE:-docker.io/rootd/bb:latest}
NAMESPACES=${ROOTD_CONTAINERD_NAMESPACES:-rootd-test k8s.io}
ROOT=/var/lib/rootd-ci/containerd
STATE=$(dirname "$SOCK")
CONFIG=/var/lib/rootd-ci/containerd-config.toml
LOG=/var/log/rootd-ci/containerd.log
IMAGEDIR=/var/lib/rootd-ci/bb-oci

say() { echo "containerd.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	say "must run as root"
	exit 1
fi

# Packages. Debian's docker.io depends on containerd, so on a Docker host it is
# usually there already; runc comes with containerd.
missing=
command -v containerd >/dev/null 2>&1 || missing="$missing containerd"
[ -x /bin/busybox ] && /bin/busybox --help 2>&1 | head -1 | grep -q BusyBox || missing="$missing busybox-static"
if [ -n "$missing" ]; then
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $missing >/dev/null
fi
# A dynamically linked busybox would not run alone in the image.
if ! LC_ALL=C ldd /bin/busybox 2>&1 | grep -q 'not a dynamic executable'; then
	say "/bin/busybox is not statically linked; install busybox-static"
	exit 1
fi

ctr_() { ctr -a "$SOCK" "$@"; }

# The daemon.
if ctr_ version >/dev/null 2>&1; then
	say "containerd already answers on $SOCK"
else
	mkdir -p "$ROOT" "$STATE" "$(dirname "$CONFIG")" "$(dirname "$LOG")"
	# A private config: the system /etc/containerd/config.toml is not read, and
	# the CRI plugin (which wants CNI and logs errors without it) is disabled.
	cat >"$CONFIG" <<CONF
version = 2
root = "$ROOT"
state = "$STATE"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"
CONF
	rm -f "$SOCK" "$SOCK.ttrpc"
	say "starting containerd on $SOCK (log $LOG)"
	# setsid detaches it from this shell's session so it survives the script.
	setsid containerd --config "$CONFIG" --root "$ROOT" --state "$STATE" \
		--address "$SOCK" >>"$LOG" 2>&1 </dev/null &
	i=0
	until ctr_ version >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			say "containerd did not answer on $SOCK within 20s; tail of $LOG:"
			tail -20 "$LOG" >&2
			exit 1
		fi
		sleep 0.2
	done
fi

# The image: an OCI image layout holding one uncompressed layer with a static
# busybox, built by hand so that no registry and no Docker are needed.
blob() { # file -> prints "sha256:HEX SIZE" after storing it as a blob
	d=$(sha256sum "$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	mv "$1" "$IMAGEDIR/layout/blobs/sha256/$d"
	echo "sha256:$d $s"
}
build_image() {
	rm -rf "$IMAGEDIR"
	mkdir -p "$IMAGEDIR/rootfs/bin" "$IMAGEDIR/rootfs/tmp" "$IMAGEDIR/layout/blobs/sha256"
	cp /bin/busybox "$IMAGEDIR/rootfs/bin/busybox"
	for a in sh sleep hostname cat ls ps; do
		ln -s busybox "$IMAGEDIR/rootfs/bin/$a"
	done
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
		-C "$IMAGEDIR/rootfs" -cf "$IMAGEDIR/layer.tar" .
	set -- $(blob "$IMAGEDIR/layer.tar")
	layer=$1 layersize=$2
	arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
	case $arch in
	x86_64) arch=amd64 ;;
	aarch64) arch=arm64 ;;
	esac
	printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
		"$arch" "$layer" >"$IMAGEDIR/config.json"
	set -- $(blob "$IMAGEDIR/config.json")
	config=$1 configsize=$2
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
		"$config" "$configsize" "$layer" "$layersize" >"$IMAGEDIR/manifest.json"
	set -- $(blob "$IMAGEDIR/manifest.json")
	manifest=$1 manifestsize=$2
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$manifest" "$manifestsize" "$IMAGE" "${IMAGE##*:}" >"$IMAGEDIR/layout/index.json"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$IMAGEDIR/layout/oci-layout"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
		-C "$IMAGEDIR/layout" -cf "$IMAGEDIR/bb-oci.tar" oci-layout index.json blobs
}

for ns in $NAMESPACES; do
	if ctr_ -n "$ns" images ls -q 2>/dev/null | grep -qx "$IMAGE"; then
		continue
	fi
	[ -f "$IMAGEDIR/bb-oci.tar" ] || build_image
	say "importing $IMAGE into namespace $ns"
	ctr_ -n "$ns" images import "$IMAGEDIR/bb-oci.tar" >&2
	if ! ctr_ -n "$ns" images ls -q | grep -qx "$IMAGE"; then
		say "import into $ns did not create $IMAGE"
		exit 1
	fi
done

echo "$SOCK"
