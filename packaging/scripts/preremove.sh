#!/bin/sh
# Before removing rootd (deb: "remove", rpm: "0"; not on upgrade): if pmcd was
# switched to rootd, switch it back to pmdaroot so removing the package leaves
# pmcd working as it did before rootd was installed.
set -e
case "${1:-}" in
remove | purge | 0) ;;
*) exit 0 ;;
esac
if [ -x /usr/sbin/rootd-switch ]; then
	if /usr/sbin/rootd-switch status >/dev/null 2>&1 || [ $? -eq 2 ]; then
		/usr/sbin/rootd-switch disable || true
	fi
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now rootd.service >/dev/null 2>&1 || true
fi
exit 0
