#!/bin/sh
# Runs rootd's container image for real, the way deploy/kubernetes runs it
# (the docker run arguments are generated from daemonset.yaml by
# packaging/cmd/dsrun): host PID and network namespaces, SYS_ADMIN and
# SYS_PTRACE only, read-only root, the same read-only host mounts, the
# socket directory bind-mounted (a scratch directory instead of the
# machine's /var/lib/pcp/pmcd). Then, from the host:
#   - rootctl -s SOCK pid|hostname|cgroup for a Docker, a Podman, a
#     containerd, a Kubernetes-labelled containerd (NAMESPACE/POD/CONTAINER)
#     and an LXC container, each checked against the engine and /proc;
#   - PCP's C client (integration/c/rootclient.c) as root and as the PCP
#     user (the socket is 0660 group pcp, served from the host's /etc/group);
#   - STARTPMDA is refused in the container (no agent programs there), so
#     pmcd starts its agents itself;
#   - the DaemonSet's liveness probe command, inside the container;
#   - the image's OCI labels.
# Every container it makes is named pkg-img-* and removed at the end.
# Needs root and the engines of scripts/setup.sh. Run by scripts/test.sh;
# alone: sudo sh scripts/image-test.sh
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy
top=$(pwd)

say() { echo "image-test.sh: $*"; }
fail() {
	echo "image-test.sh: FAIL: $*" >&2
	if docker inspect pkg-img-rootd >/dev/null 2>&1; then
		echo "--- rootd's log:" >&2
		docker logs pkg-img-rootd 2>&1 | tail -n 30 >&2
	fi
	exit 1
}
step_start=$(date +%s.%N)
step() {
	now=$(date +%s.%N)
	say "$(printf '%s: %.1fs' "$1" "$(echo "$now - $step_start" | bc)")"
	step_start=$now
}

[ "$(id -u)" = 0 ] || fail "must run as root"
CTR_SOCK=${ROOTD_CONTAINERD_ADDRESS:-/run/rootd-ci/containerd/containerd.sock}
ctr_() { ctr -a "$CTR_SOCK" "$@"; }
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

work=$(mktemp -d)
cleanup() {
	set +e
	$DOCKER rm -f pkg-img-rootd pkg-img-docker >/dev/null 2>&1
	podman rm -f -t 0 pkg-img-podman >/dev/null 2>&1
	for x in rootd-test:pkg-img-ctr k8s.io:pkg-img-k8s; do
		ctr_ -n "${x%%:*}" task kill -s KILL "${x#*:}" >/dev/null 2>&1
		ctr_ -n "${x%%:*}" task rm -f "${x#*:}" >/dev/null 2>&1
		ctr_ -n "${x%%:*}" containers rm "${x#*:}" >/dev/null 2>&1
	done
	lxc-stop -k -n pkg-img-lxc >/dev/null 2>&1
	lxc-destroy -n pkg-img-lxc >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d)

# 1. The image, and its labels.
make -s image IMAGE=rootd:ci >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "make image"; }
label() { $DOCKER image inspect rootd:ci --format "{{index .Config.Labels \"org.opencontainers.image.$1\"}}"; }
sde=$(git log -1 --format=%ct)
[ "$(label version)" = "$(cat VERSION)" ] || fail "label version: $(label version)"
[ "$(label revision)" = "$(git rev-parse HEAD)" ] || fail "label revision: $(label revision)"
[ "$(label created)" = "$(date -u -d "@$sde" +%Y-%m-%dT%H:%M:%SZ)" ] || fail "label created: $(label created)"
[ "$(label licenses)" = Apache-2.0 ] || fail "label licenses: $(label licenses)"
[ -n "$(label source)" ] || fail "no source label"
[ "$($DOCKER image inspect rootd:ci --format '{{.Config.User}}')" = 0:0 ] || fail "image user"
step "make image (+ labels)"

# 2. The PCP account (Debian's pcp package is not installed here), the C
#    client, the host's rootctl.
if ! getent passwd pcp >/dev/null; then
	useradd --system --user-group --no-create-home --home-dir /var/lib/pcp --shell /usr/sbin/nologin pcp
fi
cc -o "$work/rootclient" integration/c/rootclient.c -lpcp_pmda -lpcp || fail "building rootclient"
chmod 0755 "$work" "$work/rootclient"
make -s all
rootctl=$top/bin/rootctl
step "pcp account, C client, rootctl"

# 3. One container per engine.
$DOCKER run -d --name pkg-img-docker --hostname pkg-img-docker-host --network none bb:latest sleep 600 >/dev/null
podman run -d --name pkg-img-podman --hostname pkg-img-podman-host --network none localhost/bb:latest sleep 600 >/dev/null
ctr_ -n rootd-test run -d docker.io/rootd/bb:latest pkg-img-ctr sleep 600 >/dev/null
ctr_ -n k8s.io run -d --label io.kubernetes.pod.namespace=pkg-ns --label io.kubernetes.pod.name=pkg-pod \
	--label io.kubernetes.container.name=pkg-c docker.io/rootd/bb:latest pkg-img-k8s sleep 600 >/dev/null
sh scripts/engines/lxc.sh create pkg-img-lxc >/dev/null
lxc-start -n pkg-img-lxc
lxc-wait -n pkg-img-lxc -s RUNNING -t 20 || fail "LXC container did not start"
step "start a Docker, Podman, 2 containerd and an LXC container"

# 4. rootd in its image, as the DaemonSet runs it.
mkdir -p "$work/socket"
prop=true
[ "$(findmnt -no PROPAGATION / 2>/dev/null)" = private ] && prop=false
(cd packaging && go run ./cmd/dsrun -f ../deploy/kubernetes/daemonset.yaml -image rootd:ci \
	-socket-dir "$work/socket" -propagation=$prop -- --containerd-address "$CTR_SOCK") >"$work/args" ||
	fail "dsrun"
say "docker run --name pkg-img-rootd -d $(tr '\n' ' ' <"$work/args")"
# shellcheck disable=SC2046 # one argument per line, none with blanks
set -- $(cat "$work/args")
$DOCKER run -d --name pkg-img-rootd "$@" >/dev/null || fail "docker run"
sock=$work/socket/root.socket
i=0
until [ -S "$sock" ] && "$rootctl" -s "$sock" --timeout 2s pid pkg-img-docker >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "no answer on $sock"
	sleep 0.1
done
step "rootd up in its container"
mode=$(stat -c '%a %G' "$sock")
[ "$mode" = "660 pcp" ] || fail "socket is $mode, want 660 pcp (the PCP group from the host's /etc/group)"

# 5. The answers, against what the engines and /proc say on the host.
cgroup_of() { # the memory controller's path on v1/hybrid, else the 0:: one
	line=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' "/proc/$1/cgroup" || grep '^0::' "/proc/$1/cgroup")
	echo "${line#*:*:/}"
}
uts_of() { nsenter -t "$1" -u hostname; }
check() { # NAME PID
	name=$1 want_pid=$2
	got_pid=$("$rootctl" -s "$sock" pid "$name") || fail "rootctl pid $name"
	got_host=$("$rootctl" -s "$sock" hostname "$name") || fail "rootctl hostname $name"
	got_cg=$("$rootctl" -s "$sock" cgroup "$name") || fail "rootctl cgroup $name"
	[ "$got_pid" = "$want_pid" ] || fail "$name: pid $got_pid, want $want_pid"
	[ "$got_host" = "$(uts_of "$want_pid")" ] || fail "$name: hostname $got_host, want $(uts_of "$want_pid")"
	[ "$got_cg" = "$(cgroup_of "$want_pid")" ] || fail "$name: cgroup $got_cg, want $(cgroup_of "$want_pid")"
	printf '  %-22s pid %-7s hostname %-22s cgroup %s\n' "$name" "$got_pid" "$got_host" "$got_cg"
	# PCP's C client, as root and as the PCP user.
	for who in root pcp; do
		if [ $who = root ]; then
			out=$("$work/rootclient" "$sock" pid "$name" 2>&1) || fail "rootclient as root: $out"
		else
			out=$(setpriv --reuid=pcp --regid=pcp --init-groups "$work/rootclient" "$sock" pid "$name" 2>&1) ||
				fail "rootclient as pcp: $out"
		fi
		[ "$out" = "ok $want_pid" ] || fail "rootclient as $who, pid $name: $out"
	done
}
say "answers through the container's socket:"
check pkg-img-docker "$($DOCKER inspect -f '{{.State.Pid}}' pkg-img-docker)"
check pkg-img-podman "$(podman inspect -f '{{.State.Pid}}' pkg-img-podman)"
check pkg-img-ctr "$(ctr_ -n rootd-test task ls | awk '$1 == "pkg-img-ctr" { print $2 }')"
check pkg-ns/pkg-pod/pkg-c "$(ctr_ -n k8s.io task ls | awk '$1 == "pkg-img-k8s" { print $2 }')"
check pkg-img-lxc "$(lxc-info -n pkg-img-lxc -pH)"
for what in hostname cgroup; do
	out=$(setpriv --reuid=pcp --regid=pcp --init-groups "$work/rootclient" "$sock" $what pkg-img-docker 2>&1) ||
		fail "rootclient as pcp, $what: $out"
done
out=$("$work/rootclient" "$sock" pid pkg-img-no-such 2>&1) && fail "unknown name answered: $out"
say "  unknown name: $out"
step "pid, hostname, cgroup x5 engines; C client as root and pcp"

# 6. Process control in a container: the agent programs are not in rootd's
#    mount namespace, so STARTPMDA fails and pmcd (CreateAgent in PCP's
#    pmcd/src/config.c) forks the agent itself.
out=$("$work/rootclient" "$sock" agent 2>&1) && fail "agent start succeeded in the container: $out"
say "  STARTPMDA from the C client: $(echo "$out" | head -n 1)"
$DOCKER logs pkg-img-rootd 2>&1 | grep -q 'agent not started' || fail "rootd did not log the refused start"
"$rootctl" -s "$sock" pid pkg-img-docker >/dev/null || fail "socket unusable after a refused start"
step "STARTPMDA refused, socket still serving"

# 7. The liveness probe, as the kubelet runs it.
(cd packaging && go run ./cmd/dsrun -f ../deploy/kubernetes/daemonset.yaml -probe) >"$work/probe"
if ! readlink /proc/1/ns/uts >/dev/null 2>&1; then
	# Some sandboxes (this CI's VM among them) hide PID 1's namespaces even
	# from the host's root; a node's init never does. Ask about the Docker
	# test container's init instead of PID 1.
	p=$($DOCKER inspect -f '{{.State.Pid}}' pkg-img-docker)
	sed -i "\$s/^1\$/$p/" "$work/probe"
	say "  host PID 1's namespaces are unreadable here; probing --pid $p instead"
fi
# shellcheck disable=SC2046
$DOCKER exec pkg-img-rootd $(cat "$work/probe") >/dev/null || fail "liveness probe failed: $(tr '\n' ' ' <"$work/probe")"
step "liveness probe"

# 8. Stop: SIGTERM, exit 0, socket removed; every pkg-img-* container gone.
$DOCKER stop -t 10 pkg-img-rootd >/dev/null
[ "$($DOCKER inspect -f '{{.State.ExitCode}}' pkg-img-rootd)" = 0 ] || fail "rootd exit code $($DOCKER inspect -f '{{.State.ExitCode}}' pkg-img-rootd)"
[ ! -e "$sock" ] || fail "socket left after stop"
cleanup
trap - EXIT
left=$($DOCKER ps -a --format '{{.Names}}' | grep '^pkg-img-' || true)
left="$left$(podman ps -a --format '{{.Names}}' | grep '^pkg-img-' || true)"
left="$left$(lxc-ls -1 | grep '^pkg-img-' || true)"
for ns in rootd-test k8s.io; do left="$left$(ctr_ -n $ns containers ls -q | grep '^pkg-img-' || true)"; done
[ -z "$left" ] || fail "containers left: $left"
step "stop and clean up"
say ok
