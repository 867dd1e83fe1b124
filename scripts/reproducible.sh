#!/bin/sh
# Builds the committed tree (HEAD) twice, in two different directories, with
# 'make', and fails unless both builds of rootd and rootctl are byte for byte
# the same. Run by scripts/test.sh; 'make reproducible' runs it alone.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy
COMMIT=$(git rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export COMMIT SOURCE_DATE_EPOCH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in a "b/deeper/path"; do
	mkdir -p "$work/$d"
	git archive HEAD | tar -x -C "$work/$d"
	make -s -C "$work/$d" all
done
for p in rootd rootctl; do
	if ! cmp "$work/a/bin/$p" "$work/b/deeper/path/bin/$p"; then
		echo "reproducible.sh: $p differs between two builds of $COMMIT" >&2
		exit 1
	fi
	echo "reproducible.sh: $p identical in both builds ($(sha256sum < "$work/a/bin/$p" | cut -c1-16)…): $("$work/a/bin/$p" --version)"
done
