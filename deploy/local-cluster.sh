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
# with "Timed out waiting for file ...dashboard_agent_listen_port..."): give them more time, and start a node
# that failed so again (at most START_ATTEMPTS times).
export RAY_agent_register_timeout_ms=${RAY_agent_register_timeout_ms:-180000}
START_ATTEMPTS=${START_ATTEMPTS:-3}
# Ray's token authentication stays on: the head writes ~/.ray/auth_token on its first start, and whatever joins
# it (the workers, `status`, the service) reads the token from there only when told to.
JOIN_AUTH=(env RAY_AUTH_MODE=token)
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
  [ -s "$STATE_DIR/address" ] || echo "$("$RAY_BIN/python" -c 'import ray; print(ray.util.get_node_ip_address())'):$GCS_PORT" \
    > "$STATE_DIR/address"
  cat "$STATE_DIR/address"
}

start_node() {  # node $1 in the background, its pid kept; 0 is the head
  local n=$1
  if [ "$n" = 0 ]; then
    # shellcheck disable=SC2046
    nohup "$RAY_BIN/ray" start --head --block --port="$GCS_PORT" --num-cpus="$CPUS_PER_NODE" \
      --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --ray-client-server-port=$((BASE_PORT + 2)) \
      $(node_ports 0) >> "$STATE_DIR/node0.log" 2>&1 &
  else
    # shellcheck disable=SC2046
    nohup "${JOIN_AUTH[@]}" "$RAY_BIN/ray" start --block --address="$(head_address)" --num-cpus="$CPUS_PER_NODE" \
      $(node_ports "$n") >> "$STATE_DIR/node$n.log" 2>&1 &
  fi
  echo $! > "$STATE_DIR/node$n.pid"
}

attempt_log() {  # node $1's log since its latest attempt began
  awk '/^--- attempt/ { text = "" } { text = text $0 "\n" } END { printf "%s", text }' "$STATE_DIR/node$1.log" \
    2>/dev/null || true
}

node_up() {  # `ray start` of node $1 says it is up
  [[ $(attempt_log "$1") == *"will now block forever"* ]]
}

node_failed() {  # its `ray start` exited, or its raylet did (then `ray start` would wait a minute for nothing)
  local n=$1
  kill -0 "$(cat "$STATE_DIR/node$n.pid")" 2>/dev/null || return 0
  local text; text=$(attempt_log "$n")
  [[ $text == *"timed out during startup"* || $text == *"Failed to connect to GCS"* ]]
}

wait_for_nodes() {  # start nodes $@ and wait until each is up, starting a failed one again
  local deadline=$((SECONDS + ${START_TIMEOUT:-400})) n attempt
  for n in "$@"; do
    attempt=1
    start_node "$n"
    until node_up "$n"; do
      if node_failed "$n"; then
        stop_pid "$STATE_DIR/node$n.pid"
        [ $attempt -lt "$START_ATTEMPTS" ] || { echo "node$n did not start; see $STATE_DIR/node$n.log" >&2; stop; exit 1; }
        attempt=$((attempt + 1))
        echo "--- attempt $attempt" >> "$STATE_DIR/node$n.log"
        start_node "$n"
        sleep 1
      fi
      [ $SECONDS -lt $deadline ] || { echo "timed out waiting for node$n; logs in $STATE_DIR" >&2; stop; exit 1; }
      sleep 1
    done
  done
}

alive_nodes() {  # how many nodes Ray counts alive (0 while the head does not answer)
  [ -e "$STATE_DIR/node0.pid" ] && kill -0 "$(cat "$STATE_DIR/node0.pid")" 2>/dev/null || { echo 0; return; }
  RAY_ADDRESS=$(head_address) "${JOIN_AUTH[@]}" timeout 60 "$RAY_BIN/python" - <<'PY' 2>/dev/null || echo 0
import logging, ray
ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

start() {
  mkdir -p "$STATE_DIR"
  [ ! -e "$STATE_DIR/node0.pid" ] || { echo "already started (state in $STATE_DIR); stop it first" >&2; exit 1; }
  wait_for_nodes 0 1 2
  local address; address=$(head_address)
  echo "Ray: 3 nodes at $address, dashboard http://127.0.0.1:$DASHBOARD_PORT"
  if [ "${2:-}" != "--no-serve" ]; then
    RAYPROC_DASHBOARD_URL="http://127.0.0.1:$DASHBOARD_PORT" nohup "${JOIN_AUTH[@]}" "$RAY_BIN/rayproc" serve \
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
  rm -f "$STATE_DIR/address"
  echo "stopped"
}

case $cmd in
  start) start "$@" ;;
  stop) stop ;;
  status) echo "alive nodes: $(alive_nodes)" ;;
  *) echo "usage: $0 start [--no-serve] | status | stop" >&2; exit 2 ;;
esac
