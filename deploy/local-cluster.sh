#!/usr/bin/env bash
# A Ray head and two workers on this one machine, each on ports of its own, and the rayproc service on them:
# a multi-node cluster to try rayproc on (node loss, placement) without a second machine.
#
#   deploy/local-cluster.sh start [--no-serve]   start head, two workers, then the service (API on $API_PORT)
#   deploy/local-cluster.sh status               the nodes Ray sees
#   deploy/local-cluster.sh stop                 stop the service and these three nodes, and only them
#
# Settings (environment): STATE_DIR (default ~/.rayproc-local-cluster: pids, logs, the service's data),
# BASE_PORT (default 27000: node n uses BASE_PORT+100n .. +99), API_PORT (default 8010), CPUS_PER_NODE (1),
# RAY_BIN (the directory of the `ray` and `rayproc` commands; default: the ones on PATH).
#
# Every node runs `ray start --block` in the background: stopping it (SIGTERM to the pid this script kept) takes
# its node's processes with it. This script never runs `ray stop`, which would stop every Ray on the machine.
set -euo pipefail

cmd=${1:-start}
STATE_DIR=${STATE_DIR:-$HOME/.rayproc-local-cluster}
BASE_PORT=${BASE_PORT:-27000}
API_PORT=${API_PORT:-8010}
CPUS_PER_NODE=${CPUS_PER_NODE:-1}
RAY_BIN=${RAY_BIN:-$(dirname "$(command -v ray)")}
GCS_PORT=$BASE_PORT
# On a loaded machine Ray's Python agents can take longer than Ray's defaults to start (the raylet then exits
# with "Timed out waiting for file ...dashboard_agent_listen_port..."): give them more time.
export RAY_agent_register_timeout_ms=${RAY_agent_register_timeout_ms:-180000}
export RAY_raylet_start_wait_time_s=${RAY_raylet_start_wait_time_s:-240}
DASHBOARD_PORT=$((BASE_PORT + 1))

# The ports of node n (0 = head): each Ray component of each node gets its own.
node_ports() {
  local b=$((BASE_PORT + 100 * $1))
  echo "--node-manager-port=$((b + 10)) --object-manager-port=$((b + 11))" \
       "--dashboard-agent-listen-port=$((b + 12)) --dashboard-agent-grpc-port=$((b + 13))" \
       "--metrics-export-port=$((b + 14)) --runtime-env-agent-port=$((b + 15))" \
       "--min-worker-port=$((b + 20)) --max-worker-port=$((b + 99))"
}

head_address() {
  # Ray binds the machine's own address (not 127.0.0.1); workers and the service join it there.
  echo "$("$RAY_BIN/python" -c 'import ray; print(ray.util.get_node_ip_address())'):$GCS_PORT"
}

wait_for_nodes() {  # until Ray counts $1 alive nodes; fails at once if a node's `ray start` has exited
  local want=$1 deadline=$((SECONDS + ${START_TIMEOUT:-180}))
  until [ "$(alive_nodes)" -ge "$want" ]; do
    for f in "$STATE_DIR"/node*.pid; do
      kill -0 "$(cat "$f")" 2>/dev/null || { echo "$(basename "$f" .pid) did not start; see ${f%.pid}.log" >&2; stop; exit 1; }
    done
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $want nodes; logs in $STATE_DIR" >&2; stop; exit 1; }
    sleep 1
  done
}

alive_nodes() {  # how many nodes Ray counts alive (0 while the head does not answer)
  [ -e "$STATE_DIR/node0.pid" ] && kill -0 "$(cat "$STATE_DIR/node0.pid")" 2>/dev/null || { echo 0; return; }
  RAY_ADDRESS=$(head_address) timeout 60 "$RAY_BIN/python" - <<'PY' 2>/dev/null || echo 0
import logging, ray
ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

start() {
  mkdir -p "$STATE_DIR"
  [ ! -e "$STATE_DIR/node0.pid" ] || { echo "already started (state in $STATE_DIR); stop it first" >&2; exit 1; }
  # shellcheck disable=SC2046
  nohup "$RAY_BIN/ray" start --head --block --port="$GCS_PORT" --num-cpus="$CPUS_PER_NODE" \
    --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --ray-client-server-port=$((BASE_PORT + 2)) \
    $(node_ports 0) > "$STATE_DIR/node0.log" 2>&1 &
  echo $! > "$STATE_DIR/node0.pid"
  wait_for_nodes 1
  local address; address=$(head_address)
  for n in 1 2; do
    # shellcheck disable=SC2046
    nohup "$RAY_BIN/ray" start --block --address="$address" --num-cpus="$CPUS_PER_NODE" $(node_ports $n) \
      > "$STATE_DIR/node$n.log" 2>&1 &
    echo $! > "$STATE_DIR/node$n.pid"
  done
  wait_for_nodes 3
  echo "Ray: 3 nodes at $address, dashboard http://127.0.0.1:$DASHBOARD_PORT"
  if [ "${2:-}" != "--no-serve" ]; then
    RAYPROC_DASHBOARD_URL="http://127.0.0.1:$DASHBOARD_PORT" nohup "$RAY_BIN/rayproc" serve \
      --ray-address "$address" --port "$API_PORT" --data-dir "$STATE_DIR/data" > "$STATE_DIR/serve.log" 2>&1 &
    echo $! > "$STATE_DIR/serve.pid"
    echo "rayproc: http://127.0.0.1:$API_PORT (log $STATE_DIR/serve.log; first admin token:" \
         "$RAY_BIN/rayproc initial-token --data-dir $STATE_DIR/data)"
  fi
}

stop_pid() {  # SIGTERM the process in pid file $1, wait for it (at most 30 s), then forget it
  local file=$1 pid
  [ -e "$file" ] || return 0
  pid=$(cat "$file")
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
}

stop() {
  stop_pid "$STATE_DIR/serve.pid"
  for n in 2 1 0; do stop_pid "$STATE_DIR/node$n.pid"; done
  echo "stopped"
}

case $cmd in
  start) start "$@" ;;
  stop) stop ;;
  status) echo "alive nodes: $(alive_nodes)" ;;
  *) echo "usage: $0 start [--no-serve] | status | stop" >&2; exit 2 ;;
esac
