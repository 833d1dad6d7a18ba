#!/usr/bin/env bash
# Starts and stops the real Kafka broker and PostgreSQL cluster without a Docker engine.
#   services.sh up     idempotent; writes .run/services.env
#   services.sh down   idempotent
#   services.sh pg-crash  PostgreSQL stopped at once, as in a crash (outage tests)
# Kafka: jars resolved from Maven Central by the machine's Maven (deploy/kafka/pom.xml),
# run with the machine's Java in KRaft mode. PostgreSQL: Debian's packages (installed
# when missing), a throwaway cluster made with initdb/pg_ctl.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
RUN="$ROOT/.run"
CACHE="${QBSYNC_CACHE_DIR:-$ROOT/.cache}"
KAFKA_PORT="${QBSYNC_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${QBSYNC_KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${QBSYNC_PG_PORT:-54329}"
KAFKA_LIBS="$CACHE/kafka-libs"
KAFKA_DIR="$RUN/kafka"
PG_DIR="$RUN/pg"
ENV_FILE="$RUN/services.env"

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # wait_port PORT NAME SECONDS
  local deadline=$((SECONDS + $3))
  until port_open "$1"; do
    if ((SECONDS > deadline)); then log "$2 did not open port $1 within $3 s"; return 1; fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- Kafka
kafka_libs() {
  if [[ -f "$KAFKA_LIBS/.complete" ]] && cmp -s "$ROOT/deploy/kafka/pom.xml" "$KAFKA_LIBS/.complete"; then
    return
  fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch the Kafka broker jars"; exit 1; }
  log "resolving Apache Kafka jars with Maven into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
  cp "$ROOT/deploy/kafka/pom.xml" "$KAFKA_LIBS/.complete"
}

kafka_running() { [[ -f "$KAFKA_DIR/pid" ]] && kill -0 "$(cat "$KAFKA_DIR/pid")" 2>/dev/null; }

kafka_up() {
  if kafka_running; then log "Kafka already running on 127.0.0.1:$KAFKA_PORT"; return; fi
  if port_open "$KAFKA_PORT"; then
    log "port $KAFKA_PORT is taken by a process this checkout did not start"; exit 1
  fi
  kafka_libs
  mkdir -p "$KAFKA_DIR"
  sed -e "s#@DATA_DIR@#$KAFKA_DIR/data#" -e "s#@PORT@#$KAFKA_PORT#" \
      -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#" \
      "$ROOT/deploy/kafka/server.properties.in" > "$KAFKA_DIR/server.properties"
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/deploy/kafka/log4j2.properties"
    "-Dkafka.logs.dir=$KAFKA_DIR")
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    local cluster_id
    cluster_id=$(java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
    java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  nohup java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/stdout.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/pid"
  wait_port "$KAFKA_PORT" Kafka 90 || { tail -20 "$KAFKA_DIR/stdout.log" >&2; exit 1; }
}

kafka_down() {
  if kafka_running; then
    local pid; pid=$(cat "$KAFKA_DIR/pid")
    log "stopping Kafka (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$KAFKA_DIR/pid"
}

# ----------------------------------------------------------- PostgreSQL
pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [[ -x "$dir/initdb" ]] && { echo "$dir"; return; }; done
  return 1
}

pg_install() {
  pg_bin >/dev/null && return
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
}

# PostgreSQL refuses to run as root; as root we run it as the 'postgres' user, whose data
# directory must be reachable by it. A checkout in a private folder (mktemp -d) is not,
# so the data then lives in a folder of its own and .run/pg points there.
as_pg() { if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# Prints the data folder's real path (PostgreSQL must not have to pass through a private
# folder to reach it, so never the .run/pg link itself).
pg_data_dir() {
  if [[ -L "$PG_DIR" || -d "$PG_DIR" ]]; then readlink -f "$PG_DIR"; return; fi
  mkdir -p "$RUN"
  if [[ $(id -u) == 0 ]] && ! runuser -u postgres -- test -x "$RUN"; then
    local elsewhere="/var/tmp/qbsync-pg-$(echo -n "$ROOT" | md5sum | cut -c1-12)"
    rm -rf "$elsewhere"; mkdir -p "$elsewhere"; chown postgres "$elsewhere"
    ln -s "$elsewhere" "$PG_DIR"
  else
    mkdir -p "$PG_DIR"
    if [[ $(id -u) == 0 ]]; then chown postgres "$PG_DIR"; fi
  fi
  readlink -f "$PG_DIR"
}

pg_up() {
  pg_install
  local bin; bin=$(pg_bin)
  local dir; dir=$(pg_data_dir)
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_pg "$bin/initdb" -D "$dir/data" -U qbsync --auth=trust -E UTF8 --no-sync >"$RUN/pg-initdb.log" 2>&1 \
      || { cat "$RUN/pg-initdb.log" >&2; exit 1; }
  fi
  if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT"; return
  fi
  if port_open "$PG_PORT"; then log "port $PG_PORT is taken by a process this checkout did not start"; exit 1; fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
  wait_port "$PG_PORT" PostgreSQL 30
}

pg_down() {
  local bin; bin=$(pg_bin) || return 0
  [[ -e "$PG_DIR" ]] || return 0
  local dir; dir=$(readlink -f "$PG_DIR")
  [[ -f "$dir/data/PG_VERSION" ]] || return 0
  if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "stopping PostgreSQL"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  pg-crash)  # PostgreSQL stopped as a crash would (tests of outages); `up` starts it again
    bin=$(pg_bin); dir=$(readlink -f "$PG_DIR")
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
  up)
    mkdir -p "$RUN"
    pg_up
    kafka_up
    cat >"$ENV_FILE" <<ENV
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
DATABASE_URL=postgresql://qbsync@127.0.0.1:$PG_PORT/postgres
ENV
    log "addresses written to $ENV_FILE"
    ;;
  down)
    kafka_down
    pg_down
    ;;
  *) echo "usage: $0 up|down|pg-crash" >&2; exit 2 ;;
esac
