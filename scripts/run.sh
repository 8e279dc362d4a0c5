#!/usr/bin/env bash
# `make run`: the three services on the embedded defaults, stopped together on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug
export RUST_LOG=${RUST_LOG:-info}
export GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:8080}
export INGEST_ADDR=${INGEST_ADDR:-127.0.0.1:50051}
export INGEST_URL=${INGEST_URL:-http://127.0.0.1:50051}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
mkdir -p data

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "run: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

redis_host_port=${REDIS_URL#redis://}; redis_host_port=${redis_host_port%%/*}
redis_host=${redis_host_port%%:*}; redis_port=${redis_host_port##*:}
if ! [[ "$(redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null)" == PONG ]]; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "run: no Redis at $REDIS_URL; starting one for this session"
    redis-server --bind "$redis_host" --port "$redis_port" --save "" --appendonly no >data/redis.log 2>&1 &
    pids+=($!)
  else
    echo "run: no Redis at $REDIS_URL (jobs wait in the database until one answers)"
  fi
fi

$bin/ingest-svc & pids+=($!)
# The gateway and worker reconnect on their own; waiting keeps the first log clean.
ingest_host=${INGEST_ADDR%:*}; ingest_port=${INGEST_ADDR##*:}
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/$ingest_host/$ingest_port") 2>/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.1
done
$bin/gateway & pids+=($!)
$bin/worker-svc & pids+=($!)

cat <<TXT

  gateway     http://$GATEWAY_ADDR/webhooks/whatsapp   (healthz, readyz, metrics)
  ingest-svc  grpc://$INGEST_ADDR   (${DATABASE_URL:-sqlite://data/whatsapp-ingest.db?mode=rwc})
  worker-svc  -> $INGEST_URL
  app secret  $WHATSAPP_APP_SECRET   verify token  $WHATSAPP_VERIFY_TOKEN
  Ctrl-C stops all three.

TXT
wait -n "${pids[@]}" || true
