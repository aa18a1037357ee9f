# lib.sh — what the harness scripts share (sourced, not run): the tools
# they need, a scratch directory, stopping every process they started, free
# loopback ports, waiting for readiness, and a scratch redis-server.
#
# The sourcing script sets KEEP (1 keeps the scratch directory) and, for
# start_redis, FSYNC; it adds the id of every process it starts to pids.

me=$(basename "$0")

for tool in go redis-server redis-cli curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "$me: $tool is required (redis-server and redis-cli: apt-get install redis-server)" >&2
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
  echo "$me: no free port found" >&2
  return 1
}

# wait_ready URL PID NAME LOG: polls URL until it answers 200.
wait_ready() {
  local url=$1 pid=$2 name=$3 log=$4 i
  for i in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$me: $name exited at start:" >&2
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$me: $name did not become ready at $url" >&2
  return 1
}

# start_redis starts a scratch redis-server on a free loopback port, with the
# append-only file on (appendfsync FSYNC; rewritten once it has doubled and
# is at least AOF_REWRITE_MIN, Redis's 64mb unless set), in $tmp/redis, and sets rport,
# rpid, redis_url and rcli (redis-cli against it).
start_redis() {
  echo "== starting a scratch redis-server (appendonly yes, appendfsync $FSYNC, auto-aof-rewrite-min-size ${AOF_REWRITE_MIN:-64mb})"
  rport=$(free_port)
  mkdir -p "$tmp/redis"
  redis-server --bind 127.0.0.1 --port "$rport" --dir "$tmp/redis" \
    --appendonly yes --appendfsync "$FSYNC" --save "" --auto-aof-rewrite-min-size "${AOF_REWRITE_MIN:-64mb}" \
    --maxmemory-policy noeviction --daemonize no --logfile "$tmp/redis/redis.log" &
  rpid=$!
  pids+=("$rpid")
  local i
  for i in $(seq 1 100); do
    [[ $(rcli ping 2>/dev/null || true) == PONG ]] && break
    if [[ $i == 100 ]]; then echo "$me: redis-server did not start" >&2; cat "$tmp/redis/redis.log" >&2; exit 1; fi
    sleep 0.1
  done
  redis_url="redis://127.0.0.1:$rport/0"
}
rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }

# empty_redis empties the scratch Redis for the next run: FLUSHALL, then a
# rewrite of the append-only file, now of nothing, waited for. FLUSHALL
# leaves the file as long as it was, so without the rewrite a file grown by
# the runs before reaches auto-aof-rewrite-min-size in a later run and
# Redis rewrites it then (a yardstick's drain was slowed so by 5 s of a
# rewrite it did not ask for).
empty_redis() {
  rcli flushall >/dev/null
  rcli bgrewriteaof >/dev/null
  local i
  for i in $(seq 1 400); do
    if [[ $(aof_field aof_rewrite_in_progress) == 0 && $(aof_field aof_rewrite_scheduled) == 0 ]]; then return 0; fi
    sleep 0.05
  done
  echo "$me: Redis did not finish rewriting its emptied append-only file" >&2
  return 1
}

# aof_field NAME prints a field of Redis's INFO persistence.
aof_field() { rcli info persistence | tr -d '\r' | awk -F: -v f="$1" '$1 == f {print $2}'; }
