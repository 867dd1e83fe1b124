#!/bin/sh
# Checks the packages the way an administrator meets them (as root, Debian):
# builds the .deb and .rpm (make deb rpm), installs the .deb with dpkg, runs
# rootd --version and man -w, checks /etc/rootd/rootd.conf (a conffile that
# rootd starts with) and the shell completions, runs rootd-switch enable/disable on a scratch
# copy of Debian's real pmcd.conf (idempotent, byte-identical rollback),
# purges the package and checks that nothing it installed is left and that
# dpkg --audit is clean. The .rpm is checked by its header and file list
# (Debian's rpm tool; there is no rpm host here). Also runs the packaging
# module's Go tests (the Kubernetes manifests).
#
# Never installs Debian's pcp package. Run by scripts/test.sh; alone:
#   sudo sh scripts/package-test.sh
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy

say() { echo "package-test.sh: $*"; }
fail() { echo "package-test.sh: FAIL: $*" >&2; exit 1; }
step_start=$(date +%s.%N)
step() {
	now=$(date +%s.%N)
	say "$(printf '%s: %.1fs' "$1" "$(echo "$now - $step_start" | bc)")"
	step_start=$now
}

[ "$(id -u)" = 0 ] || fail "must run as root (dpkg -i)"
need=
for t in mandoc:mandoc rpm:rpm man:man-db bc:bc; do
	command -v "${t%%:*}" >/dev/null 2>&1 || need="$need ${t#*:}"
done
if [ -n "$need" ]; then
	say "installing:$need"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >/dev/null
fi
if dpkg-query -W -f='${Status}' pcp 2>/dev/null | grep -q 'install ok installed'; then
	fail "Debian's pcp package is installed; this test must not run beside it"
fi

work=$(mktemp -d)
cleanup() {
	if dpkg-query -W -f='${Status}' rootd 2>/dev/null | grep -q installed; then
		dpkg -P rootd >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# 1. Build.
make -s deb rpm >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "make deb rpm"; }
deb=$(ls bin/rootd_*.deb)
rpmf=$(ls bin/rootd-*.rpm)
step "make deb rpm"

# 2. What the .deb holds, and which of those paths exist before installing
#    (shared directories such as /usr/share do; everything else must go).
dpkg -c "$deb" >"$work/contents"
awk '{ p = $6; sub(/^\./, "", p); sub(/\/$/, "", p); if (p != "") print p }' "$work/contents" >"$work/paths"
if dpkg-query -W -f='${Status}' rootd 2>/dev/null | grep -q installed; then
	say "rootd is installed from an earlier run; purging it first"
	dpkg -P rootd >/dev/null
fi
while read -r p; do [ -e "$p" ] && echo "$p"; done <"$work/paths" >"$work/existed"

# 3. Install; nothing of pmcd's may change.
pmcd_state() { find /etc/pcp/pmcd /etc/systemd/system/pmcd.service.d -type f -exec md5sum {} + 2>/dev/null | sort | md5sum; }
before=$(pmcd_state)
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }
[ "$(pmcd_state)" = "$before" ] || fail "installing the package changed pmcd's configuration"
step "dpkg -i"

# 4. The installed programs and pages.
/usr/sbin/rootd --version | grep -q "^rootd $(cat VERSION) (commit " || fail "rootd --version: $(/usr/sbin/rootd --version)"
/usr/bin/rootctl --version | grep -q "^rootctl $(cat VERSION) " || fail "rootctl --version"
say "$(/usr/sbin/rootd --version)"
[ "$(man -w rootd)" = /usr/share/man/man8/rootd.8.gz ] || fail "man -w rootd: $(man -w rootd 2>&1)"
[ "$(man -w rootctl)" = /usr/share/man/man1/rootctl.1.gz ] || fail "man -w rootctl"
[ "$(man -w rootd-switch)" = /usr/share/man/man8/rootd-switch.8.gz ] || fail "man -w rootd-switch"
for page in /usr/share/man/man8/rootd.8.gz /usr/share/man/man8/rootd-switch.8.gz /usr/share/man/man1/rootctl.1.gz; do
	out=$(zcat "$page" | mandoc -T lint -W all 2>&1) || fail "mandoc -T lint $page: $out"
done
# Every flag rootd accepts is in its page.
for f in $(/usr/sbin/rootd -h 2>&1 | sed -n 's/^  -\([a-z][a-z-]*\).*/\1/p'); do
	zcat /usr/share/man/man8/rootd.8.gz | grep -q -- "$(echo "$f" | sed 's/-/\\\\-/g')" || fail "rootd(8) lacks --$f"
done
[ -f /lib/systemd/system/rootd.service ] || fail "no unit installed"
grep -q '^ExecStart=/usr/sbin/rootd' /lib/systemd/system/rootd.service || fail "packaged unit does not run /usr/sbin/rootd"
for f in copyright operations.md README.md security.md; do
	[ -f "/usr/share/doc/rootd/$f" ] || fail "/usr/share/doc/rootd/$f missing"
done
[ -f /etc/logrotate.d/rootd ] || fail "logrotate snippet missing"
if command -v logrotate >/dev/null 2>&1; then
	logrotate -d /etc/logrotate.d/rootd >"$work/logrotate.log" 2>&1 || { cat "$work/logrotate.log" >&2; fail "logrotate -d"; }
fi
step "installed files (--version, man -w, lint, unit, docs)"

# 4b. The configuration file: a conffile, accepted as shipped by both
#     programs, and rootd starts with it (on a scratch socket, with the
#     static engine: the host's engines are not this test's business;
#     rootctl, asking it, reads the installed file too).
[ -f /etc/rootd/rootd.conf ] || fail "/etc/rootd/rootd.conf missing"
dpkg-query -W -f='${Conffiles}\n' rootd | grep -q '^ */etc/rootd/rootd.conf ' || fail "/etc/rootd/rootd.conf is not a conffile"
/usr/sbin/rootd --config /etc/rootd/rootd.conf --check-config >/dev/null || fail "rootd rejects the shipped rootd.conf"
mkdir -m 0700 "$work/run"
/usr/sbin/rootd -s "$work/run/root.socket" --engines static 2>"$work/rootd.log" &
rootd_pid=$!
i=0
until /usr/bin/rootctl -s "$work/run/root.socket" --timeout 1s hostname --pid $$ >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -ge 100 ] || ! kill -0 $rootd_pid 2>/dev/null; then
		kill $rootd_pid 2>/dev/null || true
		cat "$work/rootd.log" >&2
		fail "rootd did not start with /etc/rootd/rootd.conf"
	fi
	sleep 0.1
done
kill -TERM $rootd_pid
wait $rootd_pid || fail "rootd (with rootd.conf) did not exit 0 on SIGTERM"
# A typo in the file stops rootd with exit status 2, naming the key.
cp /etc/rootd/rootd.conf "$work/rootd.conf.orig"
# At the top: appended, it would land in the file's last section, [rootctl],
# which rootd rightly skips.
{ echo 'sockett = "/x"'; cat "$work/rootd.conf.orig"; } >/etc/rootd/rootd.conf
set +e
/usr/sbin/rootd --check-config >/dev/null 2>"$work/typo.log"
code=$?
set -e
cp "$work/rootd.conf.orig" /etc/rootd/rootd.conf
[ $code = 2 ] && grep -q 'unknown key "sockett"' "$work/typo.log" || fail "a typo in rootd.conf: exit $code, $(cat "$work/typo.log")"
step "rootd.conf: conffile, accepted, rootd starts with it, a typo is refused"

# 4c. Shell completion at each shell's vendor path.
for f in /usr/share/bash-completion/completions/rootctl /usr/share/zsh/vendor-completions/_rootctl /usr/share/fish/vendor_completions.d/rootctl.fish; do
	grep -q rootctl "$f" || fail "completion $f missing or empty"
done
bash -n /usr/share/bash-completion/completions/rootctl || fail "bash completion does not parse"

# 5. The switch, on a scratch copy of Debian's pmcd.conf.
sw() { /usr/sbin/rootd-switch "$@" --pmcd-conf "$work/pmcd.conf" --systemd-dir "$work/systemd" --no-restart; }
orig=packaging/testdata/pmcd.conf.debian-pcp-6.0.3
cp "$orig" "$work/pmcd.conf"
chmod 0644 "$work/pmcd.conf"
if sw status >/dev/null; then fail "status says enabled before enable"; fi
sw enable >/dev/null
grep -q '^[[:space:]]*root[[:space:]]' "$work/pmcd.conf" && fail "root line still active after enable"
grep -q '^#rootd-switch: root	1	pipe	binary		/var/lib/pcp/pmdas/root/pmdaroot$' "$work/pmcd.conf" || fail "root line not commented as expected"
cmp -s "$orig" "$work/pmcd.conf.pre-rootd" || fail "backup differs from the original"
for d in pmcd.service.d/rootd.conf rootd.service.d/pmcd.conf; do
	cmp -s "/usr/share/rootd/$d" "$work/systemd/$d" || fail "drop-in $d not installed"
done
cp "$work/pmcd.conf" "$work/after-enable"
sw enable >/dev/null
cmp -s "$work/pmcd.conf" "$work/after-enable" || fail "second enable changed pmcd.conf"
cmp -s "$orig" "$work/pmcd.conf.pre-rootd" || fail "second enable changed the backup"
sw status >/dev/null || fail "status does not say enabled"
[ "$(diff "$orig" "$work/pmcd.conf" | grep -c '^[<>]')" = 2 ] || fail "enable changed more than the root line"
sw disable >/dev/null
cmp "$orig" "$work/pmcd.conf" || fail "disable did not restore pmcd.conf byte for byte"
[ ! -e "$work/pmcd.conf.pre-rootd" ] || fail "backup left after an exact restore"
[ ! -e "$work/systemd/pmcd.service.d" ] && [ ! -e "$work/systemd/rootd.service.d" ] || fail "drop-in (directory) left after disable"
sw disable >/dev/null
cmp -s "$orig" "$work/pmcd.conf" || fail "second disable changed pmcd.conf"
if sw status >/dev/null; then fail "status says enabled after disable"; fi
# An edit made while switched survives the rollback, and so does the backup.
sw enable >/dev/null
echo "# added by the administrator" >>"$work/pmcd.conf"
sw disable >/dev/null
{ cat "$orig"; echo "# added by the administrator"; } | cmp -s - "$work/pmcd.conf" || fail "rollback lost an edit made while switched"
[ -f "$work/pmcd.conf.pre-rootd" ] || fail "backup removed although pmcd.conf was edited"
unset ROOTD_SHARE_DIR
step "rootd-switch enable x2, disable x2, edit-while-switched"

# 6. Reinstalling (dpkg's upgrade path) keeps a switched machine switched;
#    removing the package while switched gives pmcd pmdaroot back, exactly.
#    The maintainer scripts find the scratch pmcd.conf through the
#    environment dpkg passes on.
cp "$orig" "$work/pmcd.conf"
rm -f "$work/pmcd.conf.pre-rootd"
export PCP_PMCDCONF_PATH="$work/pmcd.conf" ROOTD_SYSTEMD_DIR="$work/systemd"
/usr/sbin/rootd-switch enable --no-restart >/dev/null
dpkg -i "$deb" >"$work/dpkg-i2.log" 2>&1 || { cat "$work/dpkg-i2.log" >&2; fail "dpkg -i over itself"; }
/usr/sbin/rootd-switch status >/dev/null || fail "reinstalling undid the switch"
step "dpkg -i again (upgrade path), still switched"

# 7. Purge: pmcd.conf restored; every path the package brought is gone;
#    dpkg is clean.
dpkg -P rootd >"$work/dpkg-P.log" 2>&1 || { cat "$work/dpkg-P.log" >&2; fail "dpkg -P"; }
unset PCP_PMCDCONF_PATH ROOTD_SYSTEMD_DIR
cmp "$orig" "$work/pmcd.conf" || fail "removing the package did not restore pmcd.conf"
[ ! -e "$work/pmcd.conf.pre-rootd" ] || fail "backup left after removal"
left=
while read -r p; do
	grep -qxF "$p" "$work/existed" && continue
	[ -e "$p" ] && left="$left $p"
done <"$work/paths"
[ -z "$left" ] || fail "left behind after dpkg -P:$left"
audit=$(dpkg --audit 2>&1)
[ -z "$audit" ] || fail "dpkg --audit: $audit"
[ "$(pmcd_state)" = "$before" ] || fail "install/purge changed pmcd's configuration"
step "dpkg -P (pmcd.conf restored, nothing left, dpkg --audit clean)"

# 8. The .rpm: header and file list.
q() { rpm -qp --nosignature --qf "$1" "$rpmf" 2>/dev/null; }
[ "$(q '%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}')" = "rootd $(cat VERSION) 1 x86_64 Apache-2.0" ] ||
	fail "rpm header: $(q '%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}')"
rpm -qlp --nosignature "$rpmf" 2>/dev/null | sort >"$work/rpm-files"
cat >"$work/rpm-want" <<'LIST'
/etc/logrotate.d/rootd
/etc/rootd/rootd.conf
/usr/bin/rootctl
/usr/lib/systemd/system/rootd.service
/usr/sbin/rootd
/usr/sbin/rootd-switch
/usr/share/bash-completion/completions/rootctl
/usr/share/doc/rootd/README.md
/usr/share/doc/rootd/engines.md
/usr/share/doc/rootd/operations.md
/usr/share/doc/rootd/protocol.md
/usr/share/doc/rootd/security.md
/usr/share/fish/vendor_completions.d/rootctl.fish
/usr/share/licenses/rootd/LICENSE
/usr/share/man/man1/rootctl.1.gz
/usr/share/man/man8/rootd-switch.8.gz
/usr/share/man/man8/rootd.8.gz
/usr/share/zsh/site-functions/_rootctl
/var/log/rootd
LIST
for f in $(cd dist && find . -path './*.service.d/*' -type f | sed 's|^\./||'); do
	echo "/usr/share/rootd/$f" >>"$work/rpm-want"
done
sort -o "$work/rpm-want" "$work/rpm-want"
diff "$work/rpm-want" "$work/rpm-files" || fail "rpm file list differs (< expected, > in the rpm)"
rpm -qp --nosignature --configfiles "$rpmf" 2>/dev/null | grep -qx /etc/logrotate.d/rootd || fail "logrotate snippet not a config file in the rpm"
rpm -qp --nosignature --configfiles "$rpmf" 2>/dev/null | grep -qx /etc/rootd/rootd.conf || fail "rootd.conf not a config file in the rpm"
rpm -qp --nosignature --scripts "$rpmf" 2>/dev/null | grep -q 'rootd-switch disable' || fail "rpm has no preun rollback"
step "rpm header and file list"

# 9. The packaging module's tests (Kubernetes manifests, strict decoding).
(cd packaging && go vet ./... && go test -count=1 ./...) || fail "packaging module tests"
step "go test (packaging module: manifests)"
say "ok"
