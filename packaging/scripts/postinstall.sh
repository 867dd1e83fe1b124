#!/bin/sh
# After installing or upgrading rootd (deb: "configure OLDVERSION",
# rpm: "1" install, "2" upgrade). Installing never touches pmcd: enabling
# rootd in pmcd's place is 'rootd-switch enable'. On an upgrade of a machine
# already switched, the new rootd replaces the old one and pmcd, which
# connects to the root socket only at start-up, is restarted after it.
set -e
upgrade=no
case "${1:-}" in
configure) [ -n "${2:-}" ] && upgrade=yes ;;
[2-9]*) upgrade=yes ;;
esac
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
	if [ "$upgrade" = yes ] && systemctl is-active -q rootd.service; then
		systemctl restart rootd.service || true
		systemctl try-restart pmcd.service || true
	fi
fi
exit 0
