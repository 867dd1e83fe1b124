#!/bin/sh
# Runs every fuzz target for DURATION each (default 1m), one after another,
# and prints how many inputs each one executed. On demand, not part of CI:
# CI (go test) only replays the seed corpora under testdata/fuzz/.
#
#   scripts/fuzz.sh [DURATION] [TARGET-REGEXP]
#   scripts/fuzz.sh 10m              ten minutes each
#   scripts/fuzz.sh 30s Session      only FuzzSession
#
# A target that fails leaves its input in PACKAGE/testdata/fuzz/FuzzX/, where
# plain go test replays it from then on: fix the bug and commit the input.
# The inputs each run found interesting stay in go's fuzz cache
# ($(go env GOCACHE)/fuzz) and are where the next run starts from.
# See docs/fuzzing.md. Any user can run it: FuzzSession's server admits the
# uid running it, and the only agent it may start is /usr/bin/true.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=go1.27.3 # as go.mod requires; fetched through the module proxy

duration=${1:-1m}
only=${2:-}

# "package target" for every fuzz target in the tree, found in the test
# files, so that a new target is fuzzed without being listed here.
targets=$(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	sort | while read -r file; do
		dir=$(dirname "$file")
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file" |
			while read -r name; do echo "$dir $name"; done
	done)

# The engine targets write their fake files for every input: on a tmpfs
# that costs microseconds, on a busy disk milliseconds.
scratch=$(mktemp -d /dev/shm/rootd-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM
export TMPDIR="$scratch"

summary=$scratch/summary
echo "$targets" | while read -r pkg name; do
	[ -n "$pkg" ] || continue
	if [ -n "$only" ] && ! echo "$name" | grep -Eq -- "$only"; then
		continue
	fi
	echo "== $name ($pkg, $duration)"
	log=$scratch/$name.log
	status=ok
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$duration" "$pkg" >"$log" 2>&1 || status=FAILED
	# The last progress line has the total: "fuzz: elapsed: 1m0s, execs: 123 (...)".
	execs=$(sed -n 's/^fuzz: elapsed: .*, execs: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
	corpus=$(sed -n 's/.*(total: \([0-9]*\)).*/\1/p' "$log" | tail -n 1)
	printf '%-26s %-18s %12s execs  corpus %6s  %s\n' "$name" "$pkg" "${execs:-?}" "${corpus:-?}" "$status" >>"$summary"
	if [ "$status" != ok ]; then
		grep -v '^fuzz: elapsed' "$log" | tail -n 30 >&2
		echo failed >"$scratch/failed"
	fi
done

echo
echo "== summary ($duration per target)"
cat "$summary"
if [ -e "$scratch/failed" ]; then
	echo "some targets failed; their inputs are under testdata/fuzz/" >&2
	exit 1
fi
