#!/usr/bin/env bash
# Runs cheops' production topology on this machine, every port on 127.0.0.1:
#   - PostgreSQL (Debian's package) as Temporal's database: a private cluster of its own;
#   - the Temporal server and its SQL schema tool, on PostgreSQL, with 4 history shards, plus its
#     Web UI (ui-server);
#   - a 3-member etcd cluster;
#   - 2 `cheops server` and 2 `cheops worker` processes;
#   - mutual TLS between them: etcd peers and clients, Temporal's frontend and its internode
#     traffic, and the API's HTTPS, with a CA and certificates this script makes.
# Every binary is built from this checkout (into $CHEOPS_CLUSTER_BIN): cheops, and the thin mains
# in internal/tools of the Temporal server, its schema tool, ui-server and etcd at the versions
# go.mod requires. cheops already compiles those libraries (it embeds them for `cheops dev`), so
# once cheops is built they cost little more than their links.
#
# Usage: scripts/cluster.sh up|down|status|env|build
#   up      build (seconds when nothing changed), start what is not running (a running process is
#           left alone), print the settings a client needs; re-running it restarts only what died
#   down    stop every process (the data stays; remove CHEOPS_CLUSTER_DIR to start afresh)
#   kill    SIGKILL every process at once, for a cluster whose state is thrown away next
#   status  each process, its pid, port and health; exits 1 if one is down or unhealthy
#   env     print the env file: CHEOPS_SERVER, CHEOPS_TOKEN, CHEOPS_CA and the tools' settings
#   build   only build the binaries
#
#   CHEOPS_CACHE              scripts/tools.sh's cache (the temporal CLI) and the tools' (default: $HOME/.cache/cheops)
#   CHEOPS_CLUSTER_DIR        state: data, certificates, logs, pids, the env file (default:
#                             ./.cluster in the clone; the postgres user must be able to reach it
#                             when this runs as root, which $HOME/... under /root does not allow)
#   CHEOPS_CLUSTER_BIN        where the binaries are built (default: $CHEOPS_CLUSTER_DIR/bin); a
#                             folder that outlives the state skips their links on the next fresh start
#   CHEOPS_CLUSTER_PORT_BASE  first of the ~40 ports it uses (default: 23100)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CHEOPS_CLUSTER_DIR:-$ROOT/.cluster}
BASE=${CHEOPS_CLUSTER_PORT_BASE:-23100}
mkdir -p "$DIR/run" "$DIR/logs"
DIR=$(cd "$DIR" && pwd)
BIN=${CHEOPS_CLUSTER_BIN:-$DIR/bin}
CACHE=${CHEOPS_CACHE:-$HOME/.cache/cheops}

# Ports: every process has its own, from BASE.
PG_PORT=$((BASE + 0))
etcd_client_port() { echo $((BASE + 10 + 2 * $1)); }  # members 1..3: BASE+12, +14, +16
etcd_peer_port() { echo $((BASE + 11 + 2 * $1)); }    # BASE+13, +15, +17
T_FRONTEND=$((BASE + 20))
T_FRONTEND_HTTP=$((BASE + 21))
T_HISTORY=$((BASE + 22))
T_MATCHING=$((BASE + 23))
T_WORKER=$((BASE + 24))
T_MEMBER_BASE=$((BASE + 25))   # membership: frontend, history, matching, worker = +25..+28
T_METRICS=$((BASE + 29))
UI_PORT=$((BASE + 30))
api_port() { echo $((BASE + 40 + $1)); }      # servers 1..2: BASE+41, +42
metrics_port() { echo $((BASE + 50 + $1)); }  # workers 1..2: BASE+51, +52
SERVERS=2
WORKERS=2
ETCD_MEMBERS=3

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# ---- versions and builds ----

modver() { (cd "$ROOT" && go list -m -f '{{.Version}}' "$1"); }

build() {
  TEMPORAL_VERSION=$(modver go.temporal.io/server)
  TEMPORAL_CLI=$(bash "$ROOT/scripts/tools.sh" temporal)/temporal
  # cheops every time (the build cache makes it a second or two when nothing changed; a binary that
  # is up to date is not rewritten, so a running one stays as it is). The tools change only with
  # go.mod, go.sum or internal/tools: they are linked once per such state into the cache, where a
  # fresh clone (CI's) finds them, and linked into $BIN.
  local t0=$SECONDS key tools
  mkdir -p "$BIN"
  (cd "$ROOT" && go build -o "$BIN/" ./cmd/cheops)
  key=$(cd "$ROOT" && { go version; cat go.mod go.sum; find internal/tools -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)
  tools=$CACHE/cluster-tools-$key
  if [ ! -x "$tools/etcd-status" ]; then
    rm -rf "$tools.tmp" && mkdir -p "$tools.tmp"
    (cd "$ROOT" && go build -o "$tools.tmp/" ./internal/tools/...)
    rm -rf "$tools" && mv "$tools.tmp" "$tools"
  fi
  ln -sf "$tools"/* "$BIN/"
  log "built cheops, and temporal-server, temporal-sql-tool, ui-server, etcd and etcd-status ($tools), into $BIN in $((SECONDS - t0))s"
}

# ---- processes: one pid file and one log each ----

pidfile() { echo "$DIR/run/$1.pid"; }
logfile() { echo "$DIR/logs/$1.log"; }

running() { # <name>: is its recorded process alive?
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# spawn <name> <command...>: start a process in a session of its own (so it outlives this script)
# with its output in its log file.
spawn() {
  local name=$1
  shift
  mkdir -p "$DIR/run" "$DIR/logs"
  setsid "$@" >>"$(logfile "$name")" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# stop <name>: SIGTERM, up to 20 s, then SIGKILL.
stop() {
  local name=$1 f pid t0=$SECONDS
  f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 20s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid) in $((SECONDS - t0))s"
  fi
  rm -f "$f"
}

# wait_for <name> <seconds> <check command...>
wait_for() {
  local name=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      tail -n 30 "$(logfile "$name")" >&2 || true
      die "$name exited during start; see $(logfile "$name")"
    fi
    [ $SECONDS -lt $deadline ] || die "$name not ready after ${secs}s; see $(logfile "$name")"
    sleep 0.3
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- certificates ----

CERTS=$DIR/certs
# cert <name> <CN> <extendedKeyUsage> [subjectAltName]: a P-256 key and a certificate the CA signs.
cert() {
  local name=$1 cn=$2 eku=$3 san=${4:-}
  [ -f "$CERTS/$name.crt" ] && return 0
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$san" ] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$CERTS/$name.key" -out "$CERTS/$name.csr" -subj "/O=cheops/CN=$cn" 2>/dev/null
  openssl x509 -req -in "$CERTS/$name.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$ext" -out "$CERTS/$name.crt" 2>/dev/null
  rm -f "$ext" "$CERTS/$name.csr"
  chmod 600 "$CERTS/$name.key"
}

certs() {
  mkdir -p "$CERTS"
  chmod 700 "$CERTS"
  if [ ! -f "$CERTS/ca.crt" ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 3650 -sha256 \
      -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" -subj "/O=cheops/CN=cheops cluster CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 600 "$CERTS/ca.key"
  fi
  local local_sans="DNS:localhost,IP:127.0.0.1"
  # An etcd member's certificate serves its clients and its peers and is its client to its peers.
  for i in $(seq "$ETCD_MEMBERS"); do
    cert "etcd-$i" "etcd-$i" serverAuth,clientAuth "DNS:etcd-$i,$local_sans"
  done
  # Temporal's services present the same certificate to clients and to each other (one process).
  cert temporal temporal serverAuth,clientAuth "DNS:temporal,$local_sans"
  # cheops' servers and workers: a client of etcd and of Temporal.
  cert cheops cheops clientAuth
  # An operator's tools (etcdctl, the temporal CLI, the Web UI's server): a client too.
  cert operator operator clientAuth
  # The API's HTTPS.
  cert api cheops-api serverAuth "DNS:cheops-api,$local_sans"
}

# ---- PostgreSQL ----

PG_DIR=$DIR/postgres
newest_pg() { printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1; }

pg_bin() {
  local d
  d=$(dirname "$(newest_pg)")
  [ -x "$d/initdb" ] || die "PostgreSQL's server is not installed: apt-get install postgresql"
  echo "$d"
}

# debian_packages: installs, as root, what the script runs and a fresh machine (CI) may lack:
# PostgreSQL's server, openssl for the certificates, curl for the health checks.
debian_packages() {
  local missing=()
  [ -x "$(dirname "$(newest_pg)")/initdb" ] || missing+=(postgresql-common postgresql)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages: apt-get install ${missing[*]}"
  log "installing ${missing[*]} from Debian's packages"
  # A fresh machine may have no package lists yet.
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2
}

# PostgreSQL refuses to run as root: as root it runs as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_secret() { # <file>: a random password kept in the state folder
  [ -s "$1" ] || openssl rand -hex 16 >"$1"
  cat "$1"
}

psql_su() {
  PGPASSWORD=$(cat "$PG_DIR/superuser.password") psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

postgres_up() {
  local bin
  bin=$(pg_bin)
  mkdir -p "$PG_DIR"
  pg_secret "$PG_DIR/superuser.password" >/dev/null
  pg_secret "$PG_DIR/temporal.password" >/dev/null
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initdb $PG_DIR/data"
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$PG_DIR"
      chown postgres "$PG_DIR/superuser.password"
      runuser -u postgres -- test -x "$PG_DIR" ||
        die "the postgres user cannot reach $PG_DIR; set CHEOPS_CLUSTER_DIR to a folder it can reach"
    fi
    as_pg "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
      --pwfile="$PG_DIR/superuser.password" -E UTF8 >"$(logfile postgres-initdb)" 2>&1
    # Loopback TCP only: no socket in /var/run/postgresql, which another cluster may own.
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
EOF
  fi
  if ! as_pg "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    port_free "$PG_PORT" || die "port $PG_PORT (PostgreSQL) is taken"
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    touch "$(logfile postgres)"
    [ "$(id -u)" != 0 ] || chown postgres "$(logfile postgres)"
    as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$(logfile postgres)" -w -t 60 start >/dev/null
  fi
  head -n 1 "$PG_DIR/data/postmaster.pid" >"$(pidfile postgres)"
  local tpw
  tpw=$(cat "$PG_DIR/temporal.password")
  if [ "$(psql_su -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'temporal'")" != 1 ]; then
    psql_su -d postgres -c "CREATE ROLE temporal LOGIN CREATEDB PASSWORD '$tpw'"
  fi
}

postgres_down() {
  [ -f "$PG_DIR/data/PG_VERSION" ] || return 0
  local bin
  bin=$(pg_bin)
  if as_pg "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
    log "stopped postgres"
  fi
  rm -f "$(pidfile postgres)"
}

# ---- Temporal ----

T_DIR=$DIR/temporal

sql_tool() { # <database> <args...>
  local db=$1
  shift
  "$BIN/temporal-sql-tool" --plugin postgres12 --endpoint 127.0.0.1 --port "$PG_PORT" \
    --user temporal --password "$(cat "$PG_DIR/temporal.password")" --database "$db" "$@"
}

temporal_schemas() {
  # create-database fails when the database exists; setup-schema -v 0.0 only makes the version
  # table (and refuses nothing on a second run); update-schema applies the embedded versioned
  # schemas up to the newest, so a newer server upgrades the schema on the next `up`.
  local db schema
  for db in temporal temporal_visibility; do
    if [ "$(psql_su -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
      sql_tool "$db" create-database >>"$(logfile temporal-schema)" 2>&1
      sql_tool "$db" setup-schema -v 0.0 >>"$(logfile temporal-schema)" 2>&1
    fi
    schema=postgresql/v12/temporal
    [ "$db" = temporal ] || schema=postgresql/v12/visibility
    sql_tool "$db" update-schema --schema-name "$schema" >>"$(logfile temporal-schema)" 2>&1 ||
      die "temporal-sql-tool update-schema $db failed; see $(logfile temporal-schema)"
  done
}

temporal_config() {
  mkdir -p "$T_DIR"
  local pw
  pw=$(cat "$PG_DIR/temporal.password")
  # Tasks and workflow state are served by Temporal's four services; this runs them in ONE process:
  # on one machine several processes would only add memory and startup time, and the production
  # point of splitting them (scaling history apart from matching) does not arise here. Killing
  # "the Temporal server" in the chaos test then means killing all four at once, the harder case.
  # They still talk to each other over gRPC on their own ports, with internode mTLS.
  cat >"$T_DIR/dynamicconfig.yaml" <<'EOF'
# cheops adds its search attributes at worker start and reads them back at once.
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
EOF
  local ca=$CERTS/ca.crt
  cat >"$T_DIR/config.yaml" <<EOF
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "127.0.0.1:$PG_PORT"
        connectProtocol: tcp
        user: temporal
        password: "$pw"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "127.0.0.1:$PG_PORT"
        connectProtocol: tcp
        user: temporal
        password: "$pw"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  pprof:
    port: 0
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:$T_METRICS"
  tls:
    internode:
      server:
        certFile: $CERTS/temporal.crt
        keyFile: $CERTS/temporal.key
        requireClientAuth: true
        clientCaFiles: [$ca]
      client:
        serverName: temporal
        rootCaFiles: [$ca]
    frontend:
      server:
        certFile: $CERTS/temporal.crt
        keyFile: $CERTS/temporal.key
        requireClientAuth: true
        clientCaFiles: [$ca]
      client:
        serverName: temporal
        rootCaFiles: [$ca]
    # The worker service is a client of the frontend: it needs a certificate too.
    systemWorker:
      certFile: $CERTS/temporal.crt
      keyFile: $CERTS/temporal.key
      client:
        serverName: temporal
        rootCaFiles: [$ca]
services:
  frontend:
    rpc:
      grpcPort: $T_FRONTEND
      httpPort: $T_FRONTEND_HTTP
      membershipPort: $((T_MEMBER_BASE + 0))
      bindOnIP: 127.0.0.1
  history:
    rpc:
      grpcPort: $T_HISTORY
      membershipPort: $((T_MEMBER_BASE + 1))
      bindOnIP: 127.0.0.1
  matching:
    rpc:
      grpcPort: $T_MATCHING
      membershipPort: $((T_MEMBER_BASE + 2))
      bindOnIP: 127.0.0.1
  worker:
    rpc:
      grpcPort: $T_WORKER
      membershipPort: $((T_MEMBER_BASE + 3))
      bindOnIP: 127.0.0.1
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:$T_FRONTEND"
      httpAddress: "127.0.0.1:$T_FRONTEND_HTTP"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: $T_DIR/dynamicconfig.yaml
  pollInterval: 10s
EOF
  chmod 600 "$T_DIR/config.yaml"
}

temporal_cli() {
  "$TEMPORAL_CLI" --address "127.0.0.1:$T_FRONTEND" --tls-ca-path "$CERTS/ca.crt" \
    --tls-cert-path "$CERTS/operator.crt" --tls-key-path "$CERTS/operator.key" --tls-server-name temporal "$@"
}

temporal_up() {
  temporal_schemas
  temporal_config
  if ! running temporal; then
    port_free "$T_FRONTEND" || die "port $T_FRONTEND (Temporal frontend) is taken"
    log "starting Temporal $TEMPORAL_VERSION on 127.0.0.1:$T_FRONTEND (frontend, history, matching, worker)"
    spawn temporal "$BIN/temporal-server" --config-file "$T_DIR/config.yaml" --allow-no-auth start
  fi
  wait_for temporal 120 temporal_cli operator cluster health
  if ! temporal_cli operator namespace describe --namespace default >/dev/null 2>&1; then
    temporal_cli operator namespace create --namespace default --retention 72h >/dev/null
    log "registered namespace default"
  fi
  # A new namespace takes a moment to reach every service's cache.
  wait_for temporal 60 temporal_cli workflow list --namespace default --limit 1
}

ui_up() {
  if ! running temporal-ui; then
    mkdir -p "$T_DIR/ui/config"
    cat >"$T_DIR/ui/config/cluster.yaml" <<EOF
temporalGrpcAddress: 127.0.0.1:$T_FRONTEND
host: 127.0.0.1
port: $UI_PORT
enableUi: true
defaultNamespace: default
disableNewsFetch: true
cors:
  cookieInsecure: true
tls:
  caFile: $CERTS/ca.crt
  certFile: $CERTS/operator.crt
  keyFile: $CERTS/operator.key
  serverName: temporal
  enableHostVerification: true
EOF
    port_free "$UI_PORT" || die "port $UI_PORT (Temporal Web UI) is taken"
    log "starting the Temporal Web UI on http://127.0.0.1:$UI_PORT"
    spawn temporal-ui "$BIN/ui-server" --root "$T_DIR/ui" --config config --env cluster start
  fi
  wait_for temporal-ui 60 curl -fsS -o /dev/null "http://127.0.0.1:$UI_PORT/"
}

# ---- etcd ----

etcd_endpoints() {
  local i eps=()
  for i in $(seq "$ETCD_MEMBERS"); do eps+=("https://127.0.0.1:$(etcd_client_port "$i")"); done
  (IFS=,; echo "${eps[*]}")
}

etcd_health() { # <member>
  curl -fsS --cacert "$CERTS/ca.crt" --cert "$CERTS/operator.crt" --key "$CERTS/operator.key" \
    "https://127.0.0.1:$(etcd_client_port "$1")/health" | grep -q '"health":"true"'
}

etcd_up() {
  local i cluster=() name state
  for i in $(seq "$ETCD_MEMBERS"); do cluster+=("etcd-$i=https://127.0.0.1:$(etcd_peer_port "$i")"); done
  for i in $(seq "$ETCD_MEMBERS"); do
    name=etcd-$i
    running "$name" && continue
    port_free "$(etcd_client_port "$i")" || die "port $(etcd_client_port "$i") ($name) is taken"
    # A member that has data rejoins; --initial-cluster-state only matters the first time.
    state=new
    [ ! -d "$DIR/etcd/$name/member" ] || state=existing
    log "starting $name on https://127.0.0.1:$(etcd_client_port "$i")"
    spawn "$name" "$BIN/etcd" --name "$name" --data-dir "$DIR/etcd/$name" \
      --listen-client-urls "https://127.0.0.1:$(etcd_client_port "$i")" \
      --advertise-client-urls "https://127.0.0.1:$(etcd_client_port "$i")" \
      --listen-peer-urls "https://127.0.0.1:$(etcd_peer_port "$i")" \
      --initial-advertise-peer-urls "https://127.0.0.1:$(etcd_peer_port "$i")" \
      --initial-cluster "$(IFS=,; echo "${cluster[*]}")" --initial-cluster-state "$state" \
      --initial-cluster-token cheops-cluster \
      --client-cert-auth --trusted-ca-file "$CERTS/ca.crt" \
      --cert-file "$CERTS/$name.crt" --key-file "$CERTS/$name.key" \
      --peer-client-cert-auth --peer-trusted-ca-file "$CERTS/ca.crt" \
      --peer-cert-file "$CERTS/$name.crt" --peer-key-file "$CERTS/$name.key" \
      --log-level warn
  done
  # Members wait for each other's votes: check health only once all are started.
  for i in $(seq "$ETCD_MEMBERS"); do
    wait_for "etcd-$i" 60 etcd_health "$i"
  done
}

# ---- cheops ----

cheops_files() {
  # One token file and one key file for every server and worker, as an operator would share them.
  [ -s "$DIR/encryption.keys" ] || "$BIN/cheops" admin new-key >"$DIR/encryption.keys"
  if [ ! -s "$DIR/tokens.yaml" ]; then
    local out
    out=$("$BIN/cheops" admin new-token --name cluster-admin --role admin)
    echo "$out" | sed -n 2p >"$DIR/admin.token"
    { echo "tokens:"; echo "$out" | sed -n '/^- /p'; } >"$DIR/tokens.yaml"
  fi
  chmod 600 "$DIR/encryption.keys" "$DIR/tokens.yaml" "$DIR/admin.token"
  mkdir -p "$DIR/site-files"
}

# The flags every cheops process shares: etcd and Temporal over mutual TLS.
cheops_common() {
  CHEOPS_ARGS=(--etcd-endpoints "$(etcd_endpoints)"
    --etcd-tls-cert "$CERTS/cheops.crt" --etcd-tls-key "$CERTS/cheops.key" --etcd-tls-ca "$CERTS/ca.crt"
    --temporal-address "127.0.0.1:$T_FRONTEND"
    --temporal-tls-cert "$CERTS/cheops.crt" --temporal-tls-key "$CERTS/cheops.key"
    --temporal-tls-ca "$CERTS/ca.crt" --temporal-tls-server-name temporal
    --encryption-key-file "$DIR/encryption.keys" --site-files-dir "$DIR/site-files")
}

api_ready() { curl -fsS -o /dev/null --cacert "$CERTS/ca.crt" "https://127.0.0.1:$(api_port "$1")/readyz"; }
worker_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$(metrics_port "$1")/metrics"; }

cheops_up() {
  cheops_files
  cheops_common
  local i
  for i in $(seq "$SERVERS"); do
    running "server-$i" && continue
    port_free "$(api_port "$i")" || die "port $(api_port "$i") (server-$i) is taken"
    log "starting server-$i on https://127.0.0.1:$(api_port "$i")"
    spawn "server-$i" "$BIN/cheops" server "${CHEOPS_ARGS[@]}" --tokens-file "$DIR/tokens.yaml" \
      --listen "127.0.0.1:$(api_port "$i")" --tls-cert "$CERTS/api.crt" --tls-key "$CERTS/api.key" \
      --temporal-ui-url "http://127.0.0.1:$UI_PORT"
  done
  for i in $(seq "$WORKERS"); do
    running "worker-$i" && continue
    port_free "$(metrics_port "$i")" || die "port $(metrics_port "$i") (worker-$i) is taken"
    log "starting worker-$i (metrics on http://127.0.0.1:$(metrics_port "$i"))"
    spawn "worker-$i" "$BIN/cheops" worker "${CHEOPS_ARGS[@]}" --metrics-addr "127.0.0.1:$(metrics_port "$i")"
  done
  for i in $(seq "$SERVERS"); do wait_for "server-$i" 60 api_ready "$i"; done
  for i in $(seq "$WORKERS"); do wait_for "worker-$i" 60 worker_ready "$i"; done
}

write_env() {
  local servers=() i
  for i in $(seq "$SERVERS"); do servers+=("https://127.0.0.1:$(api_port "$i")"); done
  cat >"$DIR/env" <<EOF
# cheops cluster in $DIR — source this file: . $DIR/env
# The cheops CLI (any server will do; the others: ${servers[*]})
export CHEOPS_SERVER=${servers[0]}
export CHEOPS_TOKEN=\$(cat $DIR/admin.token)
export CHEOPS_CA=$CERTS/ca.crt
export CHEOPS_CLUSTER_SERVERS="${servers[*]}"
# etcd and Temporal, for cheops server/worker or the tools, with the operator's certificate
export CHEOPS_ETCD_ENDPOINTS=$(etcd_endpoints)
export CHEOPS_ETCD_TLS_CA=$CERTS/ca.crt
export CHEOPS_ETCD_TLS_CERT=$CERTS/operator.crt
export CHEOPS_ETCD_TLS_KEY=$CERTS/operator.key
export CHEOPS_TEMPORAL_ADDRESS=127.0.0.1:$T_FRONTEND
export CHEOPS_TEMPORAL_TLS_CA=$CERTS/ca.crt
export CHEOPS_TEMPORAL_TLS_CERT=$CERTS/operator.crt
export CHEOPS_TEMPORAL_TLS_KEY=$CERTS/operator.key
export CHEOPS_TEMPORAL_TLS_SERVER_NAME=temporal
# the temporal CLI ($TEMPORAL_CLI) and etcdctl (not built here: $BIN/etcd-status reads these too)
export TEMPORAL_ADDRESS=127.0.0.1:$T_FRONTEND
export TEMPORAL_TLS_CA=$CERTS/ca.crt
export TEMPORAL_TLS_CERT=$CERTS/operator.crt
export TEMPORAL_TLS_KEY=$CERTS/operator.key
export TEMPORAL_TLS_SERVER_NAME=temporal
export ETCDCTL_ENDPOINTS=$(etcd_endpoints)
export ETCDCTL_CACERT=$CERTS/ca.crt
export ETCDCTL_CERT=$CERTS/operator.crt
export ETCDCTL_KEY=$CERTS/operator.key
# Temporal Web UI: http://127.0.0.1:$UI_PORT
EOF
}

up() {
  local t0=$SECONDS
  build
  debian_packages
  certs
  postgres_up
  etcd_up
  temporal_up
  ui_up
  cheops_up
  write_env
  cat "$DIR/env"
  log "up in $((SECONDS - t0))s; state in $DIR; stop with: scripts/cluster.sh down"
}

# stop_all <name...>: stops them in parallel.
stop_all() {
  local name
  for name in "$@"; do stop "$name" & done
  wait
}

down() {
  local i m clients=(temporal-ui) members=()
  for i in $(seq "$WORKERS"); do clients+=("worker-$i"); done
  for i in $(seq "$SERVERS"); do clients+=("server-$i"); done
  for i in $(seq "$ETCD_MEMBERS"); do members+=("etcd-$i"); done
  # Clients first, then what they use: a worker whose Temporal or etcd is gone retries instead of
  # stopping cleanly.
  stop_all "${clients[@]}"
  stop temporal
  # One member at a time: stopped together, the last ones wait for a quorum that is leaving (~9 s).
  for m in "${members[@]}"; do stop "$m"; done
  postgres_down
}

# kill_all: SIGKILL every process at once and stop PostgreSQL immediately: for a cluster whose
# state is thrown away next (a test's), where down's orderly stop would only cost time.
kill_all() {
  local f pid
  for f in "$DIR"/run/*.pid; do
    [ -f "$f" ] || continue
    [ "$(basename "$f")" != postgres.pid ] || continue
    pid=$(cat "$f")
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  if [ -f "$PG_DIR/data/PG_VERSION" ] && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null
  fi
  rm -f "$(pidfile postgres)"
  log "killed every process"
}

# ---- status ----

# mem_mib <pid>: memory of a process and its children (PostgreSQL's backends) in MiB, as PSS
# (proportional set size): pages shared by several processes, like PostgreSQL's shared buffers,
# count once in all, where RSS would count them once per backend.
mem_mib() {
  local p kb=0 v
  for p in "$1" $(ps -o pid= --ppid "$1"); do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    kb=$((kb + ${v:-0}))
  done
  echo $((kb / 1024))
}

STATUS_FORMAT='%-12s %-8s %-7s %-6s %-8s %s\n'
status_line() { # <name> <port> <check command...>
  local name=$1 port=$2 pid=- state health rss=-
  shift 2
  if running "$name"; then
    pid=$(cat "$(pidfile "$name")")
    state=running
    rss=$(mem_mib "$pid")
    TOTAL_MEM=$((TOTAL_MEM + rss))
    if "$@" >/dev/null 2>&1; then health=healthy; else health=UNHEALTHY; STATUS_RC=1; fi
  else
    state=STOPPED
    health=-
    STATUS_RC=1
  fi
  # shellcheck disable=SC2059 # the format is ours
  printf "$STATUS_FORMAT" "$name" "$pid" "$state" "$port" "$rss" "$health"
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

status() {
  TEMPORAL_CLI=$(bash "$ROOT/scripts/tools.sh" temporal)/temporal
  STATUS_RC=0
  TOTAL_MEM=0
  local i
  [ ! -f "$PG_DIR/data/postmaster.pid" ] || head -n 1 "$PG_DIR/data/postmaster.pid" >"$(pidfile postgres)"
  # shellcheck disable=SC2059
  printf "$STATUS_FORMAT" PROCESS PID STATE PORT PSS_MIB HEALTH
  status_line postgres "$PG_PORT" pg_ready
  for i in $(seq "$ETCD_MEMBERS"); do status_line "etcd-$i" "$(etcd_client_port "$i")" etcd_health "$i"; done
  status_line temporal "$T_FRONTEND" temporal_cli operator cluster health
  status_line temporal-ui "$UI_PORT" curl -fsS -o /dev/null "http://127.0.0.1:$UI_PORT/"
  for i in $(seq "$SERVERS"); do status_line "server-$i" "$(api_port "$i")" api_ready "$i"; done
  for i in $(seq "$WORKERS"); do status_line "worker-$i" "$(metrics_port "$i")" worker_ready "$i"; done
  echo "total PSS: ${TOTAL_MEM} MiB; Temporal Web UI: http://127.0.0.1:$UI_PORT; logs in $DIR/logs"
  if running etcd-1 && [ -x "$BIN/etcd-status" ]; then
    echo
    "$BIN/etcd-status" --endpoints "$(etcd_endpoints)" --cacert "$CERTS/ca.crt" \
      --cert "$CERTS/operator.crt" --key "$CERTS/operator.key" 2>&1 || true
  fi
  return "$STATUS_RC"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kill) kill_all ;;
  status) status ;;
  env) TEMPORAL_CLI=$(bash "$ROOT/scripts/tools.sh" temporal)/temporal; write_env; cat "$DIR/env" ;;
  build) build ;;
  *) echo "usage: $0 up|down|kill|status|env|build" >&2; exit 2 ;;
esac
