#!/bin/sh
# Provides the real PCP daemons and tools (pmcd, pmda_pmcd, pmdalinux,
# pmdaproc, pmdasample, pminfo, pmprobe, pmval, pmnsmerge) for the tests that
# run rootd under the whole PCP stack (integration/pcpstack_test.go), on
# Debian 12, as root. Idempotent, and quick when already done.
#
# Why not `apt-get install pcp`: its post-install needs systemd. On a machine
# without it the install fails and leaves dpkg half-configured, which breaks
# every later `apt-get install` on the machine. So:
#
#  - the runtime libraries and pcp-conf (all of which configure cleanly) are
#    installed with apt-get;
#  - the pcp package itself, at exactly the version of the installed libpcp3
#    (pcp depends on it with "="), is fetched with `apt-get download` and
#    unpacked with `dpkg-deb -x` into a private tree, $PCP_HOME/VERSION/root.
#    Nothing outside $PCP_HOME is written and dpkg knows nothing of it, so
#    no file owned by a Debian package is overwritten and dpkg stays clean
#    (checked with `dpkg --audit` at the end);
#  - PCP's programs find their files through pcp.conf, so a private one,
#    $PCP_HOME/pcp.conf (point PCP_CONF at it), is the system's
#    /etc/pcp.conf with every directory the pcp package provides moved into
#    the tree. The package's absolute symlinks (for instance
#    var/lib/pcp/pmdas/linux/help -> /usr/lib/pcp/pmdas/linux/help) are
#    re-pointed into the tree so the agents find their help text;
#  - the pcp user and group are created when missing (as pcp's own
#    post-install would), because pmcd started without -f drops to PCP_USER
#    and rootd serves that account.
#
# The tree is world-readable: pmcd running as pcp reads its DSO agents and
# PMNS from it.
#
# Environment: ROOTD_PCP_HOME (default /var/lib/rootd-ci/pcp). Prints the
# private pcp.conf's path on its last line.
set -eu

PCP_HOME=${ROOTD_PCP_HOME:-/var/lib/rootd-ci/pcp}
# The libraries the extracted programs link against (checked with ldd
# below: libpcp_gui is pmval's) and pcp-conf for the template of pcp.conf.
RUNTIME="libpcp3 libpcp-pmda3 libpcp-gui2 pcp-conf"

say() { echo "pcp.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	say "must run as root"
	exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=""
for p in $RUNTIME; do
	installed "$p" || missing="$missing $p"
done
updated=""
if [ -n "$missing" ]; then
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -q
	updated=1
	# shellcheck disable=SC2086 # a list of packages
	apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing
fi

# pcp must be the version of the installed libpcp3.
version=$(dpkg-query -W -f='${Version}' libpcp3)
tree="$PCP_HOME/$version/root"
conf="$PCP_HOME/pcp.conf"

if [ ! -f "$PCP_HOME/$version/.complete" ]; then
	say "extracting pcp $version into $tree"
	rm -rf "${PCP_HOME:?}/$version"
	mkdir -p "$PCP_HOME/$version"
	dl=$(mktemp -d)
	trap 'rm -rf "$dl"' EXIT
	# apt-get download fetches as the _apt user where it can write.
	if getent passwd _apt >/dev/null; then chown _apt "$dl"; fi
	if ! (cd "$dl" && apt-get download -q "pcp=$version" >&2); then
		[ -n "$updated" ] || apt-get -o DPkg::Lock::Timeout=600 update -q
		(cd "$dl" && apt-get download -q "pcp=$version" >&2)
	fi
	dpkg-deb -x "$dl"/pcp_*.deb "$tree"
	rm -rf "$dl"
	# Re-point the package's absolute symlinks into the tree when their
	# target is in it; links to anything the package does not hold stay.
	find "$tree" -type l | while read -r link; do
		target=$(readlink "$link")
		case $target in
		/*)
			if [ -e "$tree$target" ] || [ -L "$tree$target" ]; then
				ln -sfn "$tree$target" "$link"
			fi
			;;
		esac
	done
	chmod -R a+rX "$PCP_HOME/$version"
	touch "$PCP_HOME/$version/.complete"
	# Older versions' trees are of no use any more.
	for old in "$PCP_HOME"/*/; do
		[ "$old" = "$PCP_HOME/$version/" ] || rm -rf "$old"
	done
fi
# Only the home itself: its parent may be a shared directory such as /tmp.
chmod 755 "$PCP_HOME"

# The private pcp.conf: every directory the pcp package provides moved into
# the tree. PCP_VAR_DIR, PCP_RUN_DIR, PCP_TMP_DIR and PCP_LOG_DIR also point
# into it here, but each test gives its own in the environment, which wins.
tmp=$(mktemp "$conf.XXXXXX")
sed \
	-e "s#=/etc/pcp\\([/\"]\\|\$\\)#=$tree/etc/pcp\\1#" \
	-e "s#=/usr/lib/pcp\\([/\"]\\|\$\\)#=$tree/usr/lib/pcp\\1#" \
	-e "s#=/usr/share/pcp\\([/\"]\\|\$\\)#=$tree/usr/share/pcp\\1#" \
	-e "s#=/var/lib/pcp\\([/\"]\\|\$\\)#=$tree/var/lib/pcp\\1#" \
	-e "s#=/var/log/pcp\\([/\"]\\|\$\\)#=$tree/var/log/pcp\\1#" \
	-e "s#=/run/pcp\\([/\"]\\|\$\\)#=$tree/run/pcp\\1#" \
	-e "s#^PCP_BIN_DIR=/usr/bin\$#PCP_BIN_DIR=$tree/usr/bin#" \
	-e "s#^PCP_RC_DIR=.*#PCP_RC_DIR=$tree/etc/init.d#" \
	-e "s#^PCP_SYSCONFIG_DIR=.*#PCP_SYSCONFIG_DIR=$tree/etc/default#" \
	/etc/pcp.conf >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$conf"

# Every program the tests run must find its libraries.
bad=""
for f in usr/lib/pcp/bin/pmcd usr/lib/pcp/bin/pmnsmerge usr/bin/pminfo usr/bin/pmprobe usr/bin/pmval \
	usr/lib/pcp/pmdas/linux/pmdalinux usr/lib/pcp/pmdas/proc/pmdaproc \
	usr/lib/pcp/pmdas/sample/pmdasample usr/lib/pcp/pmdas/pmcd/pmda_pmcd.so; do
	if [ ! -e "$tree/$f" ]; then
		bad="$bad $f(absent)"
	elif LC_ALL=C ldd "$tree/$f" | grep -q 'not found'; then
		bad="$bad $f($(LC_ALL=C ldd "$tree/$f" | awk '/not found/ { printf "%s ", $1 }'))"
	fi
done
if [ -n "$bad" ]; then
	say "unusable programs in $tree:$bad"
	exit 1
fi

getent group pcp >/dev/null || groupadd --system pcp
getent passwd pcp >/dev/null ||
	useradd --system -c "Performance Co-Pilot" -g pcp -d /var/lib/pcp -M -s /usr/sbin/nologin pcp

if [ -n "$(dpkg --audit 2>&1)" ]; then
	say "dpkg --audit is not clean:"
	dpkg --audit >&2
	exit 1
fi

say "PCP $version in $tree"
echo "$conf"
