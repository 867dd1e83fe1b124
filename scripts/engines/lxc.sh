#!/bin/sh
# Sets up LXC for rootd's live tests on Debian 12 (run as root). Idempotent.
#
#   lxc.sh                install lxc, lxc-templates, busybox-static
#   lxc.sh create NAME    also create a busybox container NAME that starts
#                         offline (no network, no AppArmor); existing
#                         containers are left as they are
#
# The container config edits are those of docs/live-engines.md: this host
# has no lxcbr0 bridge and no AppArmor, so the template's defaults cannot
# start.
set -eu

install_packages() {
	missing=""
	for p in lxc lxc-templates busybox-static; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	export DEBIAN_FRONTEND=noninteractive
	# Other setup scripts may hold the dpkg lock; wait for them.
	lock="-o DPkg::Lock::Timeout=600"
	# A fresh machine has no package lists; an old list may miss versions.
	# shellcheck disable=SC2086
	apt-get $lock update -q
	# shellcheck disable=SC2086
	apt-get $lock install -y -q --no-install-recommends $missing
}

lxcpath() {
	lxc-config lxc.lxcpath 2>/dev/null || echo /var/lib/lxc
}

create_container() {
	name=$1
	case $name in
	'' | *[!A-Za-z0-9_.-]* | .*) echo "lxc.sh: bad container name '$name'" >&2; exit 2 ;;
	esac
	dir=$(lxcpath)/$name
	if [ ! -f "$dir/config" ]; then
		lxc-create -n "$name" -t busybox >/dev/null
	fi
	cfg=$dir/config
	# Drop what needs a bridge or AppArmor, then set the replacements once.
	sed -i \
		-e '/^lxc\.net\.0\.link[[:space:]]*=/d' \
		-e '/^lxc\.net\.0\.flags[[:space:]]*=/d' \
		-e '/^lxc\.net\.0\.hwaddr[[:space:]]*=/d' \
		-e '/^lxc\.apparmor\.allow_nesting[[:space:]]*=/d' \
		-e 's/^lxc\.net\.0\.type[[:space:]]*=.*/lxc.net.0.type = empty/' \
		-e 's/^lxc\.apparmor\.profile[[:space:]]*=.*/lxc.apparmor.profile = unconfined/' \
		"$cfg"
	grep -q '^lxc\.net\.0\.type[[:space:]]*=' "$cfg" || echo 'lxc.net.0.type = empty' >>"$cfg"
	grep -q '^lxc\.apparmor\.profile[[:space:]]*=' "$cfg" || echo 'lxc.apparmor.profile = unconfined' >>"$cfg"
}

case ${1:-install} in
install)
	install_packages
	;;
create)
	[ $# -eq 2 ] || { echo "usage: $0 create NAME" >&2; exit 2; }
	install_packages
	create_container "$2"
	;;
*)
	echo "usage: $0 [install | create NAME]" >&2
	exit 2
	;;
esac
