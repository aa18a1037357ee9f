#!/usr/bin/env bash
# CPU profile of Signpost's referral intake under load.
#
# signpost serve exposes no pprof endpoint (and the harness adds none to
# product code), so the profile is taken from the Go benchmark in
# gateway/httpapi/bench_test.go: Signpost's real HTTP API and Redis store
# over a scratch redis-server, 64 requests in flight. The HTTP client runs in
# the same process, so its share (net/http client, the load side) appears in
# the profile too; the floor benchmark shows what that share is.
#
#   bash deploy/bench/profile.sh                                  # Signpost, 64 in flight, 5 s
#   BENCH=BenchmarkFloorParallel bash deploy/bench/profile.sh     # the floor, to compare
#
# Environment: BENCH (benchmark name, default BenchmarkCreateReferralParallel),
# BENCHTIME (5s), NODES (rows of the tables, 30), OUT (directory for cpu.prof,
# mem.prof and the test binary; default a new temporary directory, kept).
set -euo pipefail

BENCH=${BENCH:-BenchmarkCreateReferralParallel}
BENCHTIME=${BENCHTIME:-5s}
NODES=${NODES:-30}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${OUT:-$(mktemp -d -t signpost-profile.XXXXXX)}
mkdir -p "$out"

echo "== go test -bench '^$BENCH\$' -benchtime $BENCHTIME (load average $(cut -d' ' -f1-3 /proc/loadavg))"
go test ./gateway/httpapi -run '^$' -bench "^${BENCH}\$" -benchtime "$BENCHTIME" -benchmem \
  -cpuprofile "$out/cpu.prof" -memprofile "$out/mem.prof" -o "$out/httpapi.test"

echo
echo "== CPU, flat (where the time is spent)"
go tool pprof -top -nodecount "$NODES" "$out/httpapi.test" "$out/cpu.prof" 2>/dev/null
echo
# Samples under Signpost's HTTP handler (the server side of each request,
# without the in-process client, net/http's connection handling or GC).
handler='signpost/gateway/httpapi\.\(\*API\)\.recoverPanics'
echo "== CPU, cumulative, under Signpost's handler"
go tool pprof -top -cum -nodecount "$NODES" -focus "$handler" \
  "$out/httpapi.test" "$out/cpu.prof" 2>/dev/null
echo
echo "== allocated bytes, cumulative, under Signpost's handler"
go tool pprof -top -cum -sample_index=alloc_space -nodecount "$NODES" -focus "$handler" \
  "$out/httpapi.test" "$out/mem.prof" 2>/dev/null
echo
echo "== where the handler's time goes, one level down"
go tool pprof -peek 'gateway\.\(\*Service\)\.(apply|prepare|planServiceRequest|planReferralTask|resolveRepeat)$|redisstore\.\(\*Store\)\.Commit$' \
  "$out/httpapi.test" "$out/cpu.prof" 2>/dev/null | sed -n '/^-----/,$p'
echo
echo "profiles kept in $out; browse with: go tool pprof -http=127.0.0.1:0 $out/httpapi.test $out/cpu.prof"
