#!/usr/bin/env bash
# Signpost's fault suite: the tests that kill or break something in the
# middle of work (the gateway process, Redis, a worker, a provider, a
# subscriber) and then check that nothing acknowledged was lost, duplicated
# or left pending. It runs them verbosely and ends with a summary: each
# test's result and time, and the figures the tests log. What each test
# breaks and checks: BENCHMARKS.md, "Fault suite".
#
#   bash deploy/bench/faults.sh            # about a minute
#   COUNT=5 bash deploy/bench/faults.sh    # each test five times (flakiness)
#   KEEP=1 bash deploy/bench/faults.sh     # keep the full log
#
# The tests start their own redis-server processes on free loopback ports in
# temporary directories, and the gateway tests build and run `signpost serve`
# as a child process that they kill with SIGKILL. Nothing else is touched.
# Exit status: 0 only when every test listed below ran and passed.
set -uo pipefail

COUNT=${COUNT:-1}
KEEP=${KEEP:-0}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

for tool in go redis-server; do
  if ! command -v "$tool" >/dev/null; then
    echo "faults.sh: $tool is required (redis-server: apt-get install redis-server)" >&2
    exit 1
  fi
done

# package | -run pattern | the tests it must run
suites=(
  "./cmd/signpost|TestGatewayKilledMidBurst|TestRedisKilledMidBurst|TestGatewayKilledMidDelivery"
  "./gateway/worker|TestProviderDownThenBack|TestFailsUntilLastAttempt|TestGoneDisables|TestSlowProvider|TestWorkerStoppedMidDelivery|TestNotificationsInOrderAcrossRestartAndOutage"
)
expected=(
  TestGatewayKilledMidBurstLosesAndDuplicatesNothing
  TestRedisKilledMidBurstLosesNothingAcknowledged
  TestGatewayKilledMidDeliveryDeliversEverything
  TestProviderDownThenBack
  TestFailsUntilLastAttemptThenDeadLetter
  TestGoneDisablesTheEndpoint
  TestSlowProviderDoesNotDelayOthers
  TestWorkerStoppedMidDeliveryIsReclaimed
  TestNotificationsInOrderAcrossRestartAndOutage
)

tmp=$(mktemp -d -t signpost-faults.XXXXXX)
log="$tmp/faults.log"
cleanup() {
  local status=$?
  if [[ $KEEP == 1 ]]; then echo "kept the full log: $log"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== fault suite: $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go env GOVERSION), redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//')"
rc=0
for suite in "${suites[@]}"; do
  pkg=${suite%%|*}
  pattern=${suite#*|}
  echo
  echo "== go test $pkg -count=$COUNT -v -run '$pattern'"
  # The full output goes to the log; the workers' own log lines (timestamped,
  # one per job) are left out of the screen to keep the tests' lines readable.
  go test "$pkg" -count="$COUNT" -v -run "$pattern" 2>&1 | tee -a "$log" |
    grep -Ev '^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} '
  [[ ${PIPESTATUS[0]} == 0 ]] || rc=1
done

echo
echo "== summary (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
# One line per test: passes, failures, skips and the slowest run's time;
# then each figure a test logged (t.Logf), under its test's name.
awk -v names="${expected[*]}" '
  BEGIN { n = split(names, want, " ") }
  /^=== (RUN|CONT|NAME|PAUSE) / { cur = $3 }
  /^ *--- (PASS|FAIL|SKIP): / {
    res = $2; sub(":", "", res); name = $3; t = $4; gsub(/[()s]/, "", t)
    count[name, res]++
    if (t + 0 > slow[name] + 0) slow[name] = t
    cur = name
    next
  }
  /^ +[A-Za-z0-9_]+_test\.go:[0-9]+: / {
    line = $0; sub(/^ +/, "", line)
    logs[cur] = logs[cur] "      " line "\n"
  }
  END {
    bad = 0
    printf "  %-50s %5s %5s %5s %9s\n", "test", "pass", "fail", "skip", "slowest"
    for (i = 1; i <= n; i++) {
      w = want[i]
      p = count[w, "PASS"] + 0; f = count[w, "FAIL"] + 0; s = count[w, "SKIP"] + 0
      if (p + f + s == 0) printf "  %-50s %5d %5d %5d %9s  NOT RUN\n", w, 0, 0, 0, "-"
      else printf "  %-50s %5d %5d %5d %8.2fs\n", w, p, f, s, slow[w]
      if (f > 0 || p == 0) bad = 1
      if (logs[w] != "") printf "%s", logs[w]
    }
    print (bad ? "RESULT: FAIL" : "RESULT: PASS")
    exit bad
  }' "$log" || rc=1
exit "$rc"
