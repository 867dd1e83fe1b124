# Prints the whole output of each failed top-level test in a `go test -v`
# log (the integration tests run one at a time, so a test's output lies
# between its "=== RUN" and its "--- FAIL"), at most the last `keep` lines
# of each; scripts/test.sh uses it so that CI's own output says why a live
# test failed.
#
#   awk -v keep=300 -f scripts/failed-tests.awk /tmp/rootd-integration.log
BEGIN { if (keep == "") keep = 300 }
/^=== RUN   [^\/]+$/ { n = 0 }
{ buf[n % keep] = $0; n++ }
/^--- FAIL: / {
	print "==== output of " $3
	if (n > keep) print "(" n - keep " earlier lines are in the log)"
	for (i = (n > keep ? n - keep : 0); i < n; i++) print buf[i % keep]
}
