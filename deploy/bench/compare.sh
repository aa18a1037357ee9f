#!/usr/bin/env bash
# Compares the referral intake of Signpost builds: each revision named is
# built, then the builds take turns under the same load against one scratch
# redis-server, round after round, so that drift on a shared machine hits
# them alike. See deploy/bench/README.md.
#
#   bash deploy/bench/compare.sh main .              # main against the working tree
#   bash deploy/bench/compare.sh HEAD HEAD           # the same build twice: how noisy the machine is
#   ROUNDS=6 bash deploy/bench/compare.sh HEAD~1 HEAD
#
# A revision is anything git names (a commit, branch or tag), or "." for the
# working tree as it is, uncommitted changes included. Each build is labelled
# with its position and revision ("1-main", "2-."); the summary gives each
# one's accepted referrals per second relative to the first.
#
# Environment: DURATION (measured time per run, default 10s), CONNS (64),
# ROUNDS (3), WARMUP (2s), FSYNC (everysec), AOF_REWRITE_MIN (1gb), KEEP=1
# keeps the scratch directory.
#
# Like the yardstick, it measures Redis's steady state: at Redis's default
# auto-aof-rewrite-min-size (64mb) a 10 s run from the emptied Redis grew
# its append-only file past the minimum and Redis rewrote it three times
# during the run (a fork, and a child writing the dataset on the CPUs the
# builds share), at moments that differ from run to run; that noise was
# as large as the differences compared.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}
KEEP=${KEEP:-0}
FSYNC=${FSYNC:-everysec}
AOF_REWRITE_MIN=${AOF_REWRITE_MIN:-1gb}

if [[ $# -lt 1 ]]; then
  echo "usage: bash deploy/bench/compare.sh REVISION [REVISION ...]   (\".\" is the working tree)" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# shellcheck source=deploy/bench/lib.sh
source deploy/bench/lib.sh

echo "== building into a scratch directory"
go build -o "$tmp/load" ./cmd/load
labels=()
i=0
for rev in "$@"; do
  i=$((i + 1))
  label="$i-$rev"
  labels+=("$label")
  if [[ $rev == . ]]; then
    echo "   $label: $(git rev-parse --short HEAD) and the working tree's changes"
    go build -o "$tmp/bin-$i" ./cmd/signpost
  else
    echo "   $label: $(git rev-parse --short "$rev")"
    # An export of the revision, not a checkout: the repository is left as it is.
    mkdir -p "$tmp/src-$i"
    git archive "$rev" | tar -x -C "$tmp/src-$i"
    (cd "$tmp/src-$i" && go build -o "$tmp/bin-$i" ./cmd/signpost)
  fi
done

start_redis

results="$tmp/results.jsonl"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  i=0
  for label in "${labels[@]}"; do
    i=$((i + 1))
    # Each run starts from an empty (scratch) Redis, as in run.sh.
    empty_redis
    sport=$(free_port)
    SIGNPOST_LISTEN="127.0.0.1:$sport" SIGNPOST_PUBLIC_URL="http://127.0.0.1:$sport" SIGNPOST_REDIS_URL="$redis_url" \
      "$tmp/bin-$i" serve -workers=false -config config/example.yaml >"$tmp/signpost-$i.out" 2>"$tmp/signpost-$i.log" &
    spid=$!
    pids+=("$spid")
    wait_ready "http://127.0.0.1:$sport/readyz" "$spid" "$label" "$tmp/signpost-$i.log"
    echo
    echo "== round $round/$ROUNDS: $label, $CONNS connections, warm-up $WARMUP, measured $DURATION (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$tmp/load" -url "http://127.0.0.1:$sport/fhir/ServiceRequest" -c "$CONNS" -d "$DURATION" -warmup "$WARMUP" \
      -label "$label" -json "$results" -latencies "$tmp/latencies-$i-$round.bin" \
      -cpu-of "server=$spid,redis=$rpid" | grep -v '^{'
    echo "peak RSS $(( $(awk '/^VmHWM:/ {print $2}' "/proc/$spid/status") / 1024 )) MiB"
    kill "$spid"
    wait "$spid" 2>/dev/null || true
  done
done

echo
echo "== summary"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(go env GOVERSION); $(redis-server --version | awk '{print $3}')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$tmp/load" -compare "$results"
