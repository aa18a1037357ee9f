#!/usr/bin/env bash
# Signpost's performance harness: referral intake (POST /fhir/ServiceRequest)
# against a "floor" (bench/floor: Gin + encoding/json + one pipelined Redis
# write), both over the same scratch redis-server, alternating rounds so that
# drift on a shared machine hits both alike. See bench/README.md.
#
#   bash bench/run.sh                       # 2 rounds of 10 s each, 64 connections
#   DURATION=20s CONNS=32 ROUNDS=3 bash bench/run.sh
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

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

for tool in go redis-server redis-cli curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "run.sh: $tool is required (redis-server and redis-cli: apt-get install redis-server)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d -t signpost-bench.XXXXXX)
pids=()

cleanup() {
  local status=$?
  # Only the processes this script started, by their ids.
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $KEEP == 1 ]]; then
    echo "kept the scratch directory: $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

used_ports=" "
# free_port prints a loopback port nothing listens on, below the usual
# ephemeral range so that outgoing connections do not take it meanwhile.
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$(( (RANDOM * 32768 + RANDOM) % 12000 + 20000 ))
    [[ $used_ports == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      echo "$p"
      return 0
    fi
  done
  echo "run.sh: no free port found" >&2
  return 1
}

# wait_ready URL PID NAME LOG: polls URL until it answers 200.
wait_ready() {
  local url=$1 pid=$2 name=$3 log=$4 i
  for i in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: $name exited at start:" >&2
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: $name did not become ready at $url" >&2
  return 1
}

echo "== building into a scratch directory"
go build -o "$tmp/signpost" ./cmd/signpost
go build -o "$tmp/floor" ./bench/floor
go build -o "$tmp/load" ./bench/load

FSYNC=${FSYNC:-everysec}
echo "== starting a scratch redis-server (appendonly yes, appendfsync $FSYNC)"
rport=$(free_port)
mkdir -p "$tmp/redis"
redis-server --bind 127.0.0.1 --port "$rport" --dir "$tmp/redis" \
  --appendonly yes --appendfsync "$FSYNC" --save "" \
  --maxmemory-policy noeviction --daemonize no --logfile "$tmp/redis/redis.log" &
rpid=$!
pids+=("$rpid")
rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }
for i in $(seq 1 100); do
  [[ $(rcli ping 2>/dev/null || true) == PONG ]] && break
  if [[ $i == 100 ]]; then echo "run.sh: redis-server did not start" >&2; cat "$tmp/redis/redis.log" >&2; exit 1; fi
  sleep 0.1
done
redis_url="redis://127.0.0.1:$rport/0"

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
    rcli flushall >/dev/null
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
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its CPUs with the runs)"
echo "signpost peak RSS (VmHWM) $((rss_kib / 1024)) MiB, RSS now $((rss_now / 1024)) MiB; floor peak RSS $((floor_rss / 1024)) MiB; redis peak memory $redis_peak"
"$tmp/load" -summary "$results" -rss-kib "$rss_kib"
