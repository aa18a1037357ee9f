#!/usr/bin/env bash
# Issue 18's measurements in one command, on one scratch redis-server:
#
#   1. closed loop, CONNS connections: the floor F (one body, one job), the
#      same-work floor S (a referral's whole write set in one MULTI/EXEC),
#      S+V (S after the structural validation Signpost must make; no
#      target) and Signpost's intake (serve -workers=false, as run.sh runs
#      it), each followed by a worker process draining what that intake
#      queued (delivery's capacity), ROUNDS times;
#   2. fixed rate (open loop) at each of RATES referrals/s: F, and Signpost
#      with its delivery workers running, delivering to a webhook receiver
#      that the load generator serves on loopback; POST-to-webhook latency,
#      and how many referrals were delivered within DRAIN of the last reply;
#   3. POST-to-webhook latency at HOOK_RATE referrals/s;
#   4. server and Redis CPU per referral, Signpost's peak RSS;
#   5. Signpost at REWRITE_RATE/s again, with Redis rewriting its
#      append-only file midway (BGREWRITEAOF), for what that costs;
#
# then prints them against the issue's targets (met / not met). See
# deploy/bench/README.md.
#
#   bash deploy/bench/yardstick.sh                  # about 5 minutes
#   DURATION=5s RATES="250 1000" bash deploy/bench/yardstick.sh
#   KEEP=1 bash deploy/bench/yardstick.sh           # keep logs, results.jsonl, latencies
#
# Environment: DURATION (measured time of each phase, 10s), WARMUP (closed
# loop, 2s), RATE_WARMUP (fixed rate, 1s), CONNS (closed loop, 64),
# RATE_CONNS (the most connections the fixed-rate generator opens, 256),
# RATES ("250 1000 2500"), HOOK_RATE (200), DRAIN (2s), ROUNDS (closed-loop
# rounds, 1), FSYNC (everysec), AOF_REWRITE_MIN (1gb), REWRITE_RATE (1000;
# empty skips phase 5), KEEP (0).
#
# The phases measure the steady state: Redis rewrites its append-only file
# (a fork, and a child writing out the whole dataset) once the file has
# doubled since the last rewrite and is at least auto-aof-rewrite-min-size.
# A deployment's Redis, holding months of referrals, doubles its file hours
# apart at these rates; an emptied one at Redis's default of 64mb would
# rewrite every few seconds at them, and each rewrite competes for the
# CPUs the phase measures. So the minimum is 1gb here, and phase 5
# measures a rewrite on its own.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RATE_WARMUP=${RATE_WARMUP:-1s}
CONNS=${CONNS:-64}
RATE_CONNS=${RATE_CONNS:-256}
RATES=${RATES:-"250 1000 2500"}
HOOK_RATE=${HOOK_RATE:-200}
DRAIN=${DRAIN:-2s}
ROUNDS=${ROUNDS:-1}
FSYNC=${FSYNC:-everysec}
AOF_REWRITE_MIN=${AOF_REWRITE_MIN:-1gb}
REWRITE_RATE=${REWRITE_RATE-1000}
KEEP=${KEEP:-0}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# shellcheck source=deploy/bench/lib.sh
source deploy/bench/lib.sh

echo "== building into a scratch directory"
go build -o "$tmp/signpost" ./cmd/signpost
go build -o "$tmp/floor" ./cmd/floor
go build -o "$tmp/load" ./cmd/load

start_redis

echo "== starting F, S, S+V and Signpost's intake (-workers=false)"
fport=$(free_port)
"$tmp/floor" -mode floor -listen "127.0.0.1:$fport" -redis "$redis_url" >"$tmp/F.out" 2>"$tmp/F.log" &
fpid=$!
pids+=("$fpid")
sport=$(free_port)
"$tmp/floor" -mode same -listen "127.0.0.1:$sport" -redis "$redis_url" >"$tmp/S.out" 2>"$tmp/S.log" &
spid=$!
pids+=("$spid")
vport=$(free_port)
"$tmp/floor" -mode validated -listen "127.0.0.1:$vport" -redis "$redis_url" >"$tmp/SV.out" 2>"$tmp/SV.log" &
vpid=$!
pids+=("$vpid")
iport=$(free_port)
SIGNPOST_LISTEN="127.0.0.1:$iport" SIGNPOST_PUBLIC_URL="http://127.0.0.1:$iport" SIGNPOST_REDIS_URL="$redis_url" \
  "$tmp/signpost" serve -workers=false -config config/example.yaml >"$tmp/signpost-intake.out" 2>"$tmp/signpost-intake.log" &
ipid=$!
pids+=("$ipid")
wait_ready "http://127.0.0.1:$fport/readyz" "$fpid" F "$tmp/F.log"
wait_ready "http://127.0.0.1:$sport/readyz" "$spid" S "$tmp/S.log"
wait_ready "http://127.0.0.1:$vport/readyz" "$vpid" S+V "$tmp/SV.log"
wait_ready "http://127.0.0.1:$iport/readyz" "$ipid" signpost "$tmp/signpost-intake.log"

# The delivering Signpost's configuration: the example's, with the webhook
# provider (leeds-walking, which the load generator's referrals route to)
# pointed at the receiver the load generator serves during each run.
wport=$(free_port)
sed "s#url: \"http://127.0.0.1:9001/referrals\"#url: \"http://127.0.0.1:$wport/referrals\"#" config/example.yaml >"$tmp/signpost.yaml"
if ! grep -q "127.0.0.1:$wport/referrals" "$tmp/signpost.yaml"; then
  echo "$me: config/example.yaml no longer has the webhook URL this script points at the receiver" >&2
  exit 1
fi

results="$tmp/results.jsonl"
: >"$results"
peak_kib=0
note_rss() { # note_rss PID: keeps the highest VmHWM of the Signpost processes
  local k
  k=$(awk '/^VmHWM:/ {print $2}' "/proc/$1/status")
  if ((k > peak_kib)); then peak_kib=$k; fi
  echo "   peak RSS (VmHWM) of this Signpost process: $((k / 1024)) MiB"
}

# rewrote_since COUNT: says so when Redis has rewritten its append-only
# file since INFO persistence counted COUNT rewrites: that run's figures
# include a rewrite (expected only in the rewrite phase).
rewrote_since() {
  local now
  now=$(aof_field aof_rewrites)
  if ((now > $1)); then
    echo "   Redis rewrote its append-only file during this run ($((now - $1))×): its figures include the rewrite"
  fi
}

run_load() { # run_load LABEL PID URL ARGS...: one run, its JSON line appended to results
  local label=$1 pid=$2 url=$3 n rewrites
  shift 3
  n=$(wc -l <"$results")
  rewrites=$(aof_field aof_rewrites)
  "$tmp/load" -url "$url" -label "$label" -json "$results" -latencies "$tmp/latencies-$n.bin" \
    -cpu-of "server=$pid,redis=$rpid" "$@" | grep -v '^{'
  rewrote_since "$rewrites"
}

# Delivery's capacity on its own: what a round's closed loop of Signpost's
# intake (-workers=false) queued, one worker process drains, with the
# webhook provider pointed at the receiver and nothing else running. The
# issue asks for delivery at least as fast as intake's sustained rate, so
# that a burst drains. Each round drains its own queue straight after its
# intake, so the two rates of a round are measured seconds apart.
drain_queue() {
  local queued drainer wpid rewrites
  queued=$(rcli xlen "{signpost}:q:delivery")
  echo
  echo "== delivery capacity $1/$ROUNDS: a worker process drains the $queued referrals the closed loop queued (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$tmp/load" -label signpost -receive "$queued" -webhook "127.0.0.1:$wport" -d 5m -json "$results" -cpu-of "redis=$rpid" | grep -v '^{' &
  drainer=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$wport") 2>/dev/null && break
    sleep 0.05
  done
  rewrites=$(aof_field aof_rewrites)
  SIGNPOST_REDIS_URL="$redis_url" "$tmp/signpost" worker -config "$tmp/signpost.yaml" >"$tmp/signpost-drain-$1.out" 2>"$tmp/signpost-drain-$1.log" &
  wpid=$!
  pids+=("$wpid")
  wait "$drainer" || echo "$me: the drain did not complete; see $tmp/signpost-drain-$1.log" >&2
  rewrote_since "$rewrites"
  echo "   worker process CPU in all: $(awk '{printf "%.2f s", ($14 + $15) / 100}' "/proc/$wpid/stat")"
  kill "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  for target in F S SV signpost; do
    case $target in
      F) pid=$fpid port=$fport ;;
      S) pid=$spid port=$sport ;;
      SV) pid=$vpid port=$vport ;;
      signpost) pid=$ipid port=$iport ;;
    esac
    empty_redis
    echo
    echo "== closed loop $round/$ROUNDS: $target, $CONNS connections, warm-up $WARMUP, measured $DURATION (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    run_load "$target" "$pid" "http://127.0.0.1:$port/fhir/ServiceRequest" -c "$CONNS" -d "$DURATION" -warmup "$WARMUP"
  done
  drain_queue "$round"
done
note_rss "$ipid"

# Each fixed-rate run of Signpost gets a new process on an emptied Redis, so
# that no run inherits another's delivery backlog.
dpid=
stop_delivering() {
  if [[ -n $dpid ]]; then
    note_rss "$dpid"
    kill "$dpid" 2>/dev/null || true
    wait "$dpid" 2>/dev/null || true
    dpid=
  fi
}
start_delivering() {
  stop_delivering
  empty_redis
  dport=$(free_port)
  SIGNPOST_LISTEN="127.0.0.1:$dport" SIGNPOST_PUBLIC_URL="http://127.0.0.1:$dport" SIGNPOST_REDIS_URL="$redis_url" \
    "$tmp/signpost" serve -config "$tmp/signpost.yaml" >>"$tmp/signpost-delivering.out" 2>>"$tmp/signpost-delivering.log" &
  dpid=$!
  pids+=("$dpid")
  wait_ready "http://127.0.0.1:$dport/readyz" "$dpid" "signpost (delivering)" "$tmp/signpost-delivering.log"
}

for rate in $HOOK_RATE $RATES; do
  # F runs alone: the last delivering Signpost (and its backlog) is gone.
  stop_delivering
  if [[ $rate != "$HOOK_RATE" ]]; then
    empty_redis
    echo
    echo "== fixed rate: F at $rate/s, warm-up $RATE_WARMUP, measured $DURATION (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    run_load F "$fpid" "http://127.0.0.1:$fport/fhir/ServiceRequest" -rate "$rate" -c "$RATE_CONNS" -d "$DURATION" -warmup "$RATE_WARMUP"
  fi
  start_delivering
  echo
  echo "== fixed rate: Signpost at $rate/s with its workers delivering to the receiver, warm-up $RATE_WARMUP, measured $DURATION, then up to $DRAIN for deliveries (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  run_load signpost "$dpid" "http://127.0.0.1:$dport/fhir/ServiceRequest" -rate "$rate" -c "$RATE_CONNS" -d "$DURATION" -warmup "$RATE_WARMUP" \
    -webhook "127.0.0.1:$wport" -drain "$DRAIN"
done
# seconds DURATION PLUS: a duration as the load tool takes it (1s, 500ms,
# 1m) in seconds, plus PLUS.
seconds() {
  awk -v d="$1" -v plus="$2" 'BEGIN {
    if (d ~ /ms$/) { sub(/ms$/, "", d); d /= 1000 } else if (d ~ /m$/) { sub(/m$/, "", d); d *= 60 } else { sub(/s$/, "", d) }
    print d + plus }'
}

if [[ -n $REWRITE_RATE ]]; then
  start_delivering
  echo
  echo "== fixed rate: Signpost at $REWRITE_RATE/s with its workers delivering, Redis rewriting its append-only file from 3 s into the measured phase (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  (sleep "$(seconds "$RATE_WARMUP" 3)" && rcli bgrewriteaof >/dev/null) &
  run_load signpost-rewriting "$dpid" "http://127.0.0.1:$dport/fhir/ServiceRequest" -rate "$REWRITE_RATE" -c "$RATE_CONNS" -d "$DURATION" -warmup "$RATE_WARMUP" \
    -webhook "127.0.0.1:$wport" -drain "$DRAIN"
  echo "   rewrite: $(rcli info persistence | tr -d '\r' | grep -E '^aof_last_rewrite_time_sec|^aof_rewrites:' | tr '\n' ' ')fork $(rcli info stats | tr -d '\r' | awk -F: '/^latest_fork_usec/ {print $2}') µs"
fi
stop_delivering

echo
echo "== summary"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(go env GOVERSION); redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (it counts the runs' own processes: each run's steal and others say what else took the CPUs)"
echo "peak RSS (VmHWM): Signpost $((peak_kib / 1024)) MiB (the highest of its processes); F $(($(awk '/^VmHWM:/ {print $2}' "/proc/$fpid/status") / 1024)) MiB; S $(($(awk '/^VmHWM:/ {print $2}' "/proc/$spid/status") / 1024)) MiB"
"$tmp/load" -yardstick "$results" -rss-kib "$peak_kib"
