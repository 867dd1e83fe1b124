#!/bin/sh
# After removing rootd: forget the unit; on purge also the logs rootd wrote.
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
if [ "${1:-}" = purge ]; then
	rm -f /var/log/rootd/rootd.log /var/log/rootd/rootd.log.*
	rmdir /var/log/rootd 2>/dev/null || true
fi
exit 0
