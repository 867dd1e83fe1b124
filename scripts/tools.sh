#!/bin/sh
# The supply-chain checks' tools, pinned and built from source through the Go
# module proxy (no downloaded binaries), and the offline vulnerability
# database, all cached under $ROOTD_CI_CACHE (default /var/cache/rootd-ci)
# keyed by version, so that only the first run on a machine pays for them.
#
#   scripts/tools.sh            build what is missing; print nothing else
#   scripts/tools.sh staticcheck ARGS...   run the pinned staticcheck
#   scripts/tools.sh govulncheck ARGS...   run the pinned govulncheck
#                                          against the pinned database
#
# To move to a newer vulnerability database, set VULNDB_VERSION to a newer
# pseudo-version of golang.org/x/vulndb (its data/osv folder is the database
# in OSV form; its own cmd/indexdb lays it out as govulncheck's
# -db file:// expects: index/db.json, index/modules.json, index/vulns.json
# and ID/GO-....json).
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3

STATICCHECK_VERSION=v0.8.2
GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

cache=${ROOTD_CI_CACHE:-/var/cache/rootd-ci}
gover=$(go env GOVERSION)
# A tool is keyed by its own version and the toolchain that built it: a
# staticcheck built by an older Go cannot load packages of a newer one.
staticcheck_bin=$cache/tools/staticcheck-$STATICCHECK_VERSION-$gover/staticcheck
govulncheck_bin=$cache/tools/govulncheck-$GOVULNCHECK_VERSION-$gover/govulncheck
vulndb_dir=$cache/vulndb/$VULNDB_VERSION

say() { echo "tools.sh: $*" >&2; }

# install PKG VERSION DEST: go install into a scratch folder, then rename it
# into place, so an interrupted build never leaves a half-made cache entry.
install() {
	dest_dir=$(dirname "$3")
	[ -x "$3" ] && return 0
	say "building $1@$2 with $gover"
	mkdir -p "$(dirname "$dest_dir")"
	tmp=$(mktemp -d "$dest_dir.tmp.XXXXXX")
	GOBIN=$tmp go install "$1@$2"
	rm -rf "$dest_dir"
	mv "$tmp" "$dest_dir"
}

build_vulndb() {
	[ -f "$vulndb_dir/index/db.json" ] && return 0
	say "building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
	mkdir -p "$(dirname "$vulndb_dir")"
	src=$(go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ ! -d "$src/data/osv" ]; then
		say "golang.org/x/vulndb@$VULNDB_VERSION has no data/osv folder"
		exit 1
	fi
	tmp=$(mktemp -d "$vulndb_dir.tmp.XXXXXX")
	rmdir "$tmp" # indexdb makes its output folder itself
	# Run from a scratch folder: go run pkg@version ignores the current
	# module, and must not read or change rootd's go.mod.
	(cd "$(dirname "$vulndb_dir")" && go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$tmp")
	rm -rf "$vulndb_dir"
	mv "$tmp" "$vulndb_dir"
}

install honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION" "$staticcheck_bin"
install golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION" "$govulncheck_bin"
build_vulndb

case "${1:-}" in
"") ;;
staticcheck)
	shift
	exec "$staticcheck_bin" "$@"
	;;
govulncheck)
	shift
	exec "$govulncheck_bin" -db "file://$vulndb_dir" "$@"
	;;
*)
	say "unknown command $1 (want staticcheck or govulncheck)"
	exit 2
	;;
esac
