#!/usr/bin/env bash
# Signpost's performance harness: referral intake (POST /fhir/ServiceRequest)
# against a "floor" (cmd/floor: Gin + encoding/json + one pipelined Redis
# write), both over the same scratch redis-server, alternating rounds so that
# drift on a shared machine hits both alike. See deploy/bench/README.md.
#
#   bash deploy/bench/run.sh                       # 2 rounds of 10 s each, 64 connections
#   DURATION=20s CONNS=32 ROUNDS=3 bash deploy/bench/run.sh
#
# Environment: DURATION (measured time per run, default 10s), CONNS (64),
# ROUNDS (2), WARMUP (unmeasured load before each run, 2s), KEEP=1 keeps the
# scratch directory (logs, results.jsonl, latencies) for a look afterwards.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2s}
KEEP=${KEEP:-0}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# shellcheck source=deploy/bench/lib.sh
source deploy/bench/lib.sh

echo "== building into a scratch directory"
go build -o "$tmp/signpost" ./cmd/signpost
go build -o "$tmp/floor" ./cmd/floor
go build -o "$tmp/load" ./cmd/load

FSYNC=${FSYNC:-everysec}
start_redis

echo "== starting signpost and the floor"
sport=$(free_port)
SIGNPOST_LISTEN="127.0.0.1:$sport" SIGNPOST_PUBLIC_URL="http://127.0.0.1:$sport" SIGNPOST_REDIS_URL="$redis_url" \
  "$tmp/signpost" serve -workers=false -config config/example.yaml >"$tmp/signpost.out" 2>"$tmp/signpost.log" &
spid=$!
pids+=("$spid")
fport=$(free_port)
"$tmp/floor" -listen "127.0.0.1:$fport" -redis "$redis_url" >"$tmp/floor.out" 2>"$tmp/floor.log" &
fpid=$!
pids+=("$fpid")
wait_ready "http://127.0.0.1:$sport/readyz" "$spid" signpost "$tmp/signpost.log"
wait_ready "http://127.0.0.1:$fport/readyz" "$fpid" floor "$tmp/floor.log"

declare -A pid=([floor]=$fpid [signpost]=$spid)
declare -A url=(
  [floor]="http://127.0.0.1:$fport/fhir/ServiceRequest"
  [signpost]="http://127.0.0.1:$sport/fhir/ServiceRequest"
)
results="$tmp/results.jsonl"
: >"$results"

for round in $(seq 1 "$ROUNDS"); do
  for target in floor signpost; do
    # Each run starts from an empty (scratch) Redis, so neither inherits the
    # other's data set or an AOF rewrite in progress.
    empty_redis
    echo
    echo "== round $round/$ROUNDS: $target, $CONNS connections, warm-up $WARMUP, measured $DURATION (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$tmp/load" -url "${url[$target]}" -c "$CONNS" -d "$DURATION" -warmup "$WARMUP" \
      -label "$target" -json "$results" -latencies "$tmp/latencies-$target-$round.bin" \
      -cpu-of "server=${pid[$target]},redis=$rpid" | grep -v '^{'
  done
done

rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$spid/status")
rss_now=$(awk '/^VmRSS:/ {print $2}' "/proc/$spid/status")
floor_rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$fpid/status")
redis_peak=$(rcli info memory | awk -F: '/^used_memory_peak_human:/ {gsub("\r", "", $2); print $2}')

echo
echo "== summary"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(go env GOVERSION); $(redis-server --version | awk '{print $3}')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (it counts the runs' own processes: each run's steal and others say what else took the CPUs)"
echo "signpost peak RSS (VmHWM) $((rss_kib / 1024)) MiB, RSS now $((rss_now / 1024)) MiB; floor peak RSS $((floor_rss / 1024)) MiB; redis peak memory $redis_peak"
"$tmp/load" -summary "$results" -rss-kib "$rss_kib"
