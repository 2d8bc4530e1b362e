#!/usr/bin/env bash
# Brings up, or stops, the real OpenStack control plane the end-to-end tests run against: Debian 12's
# OpenStack (Zed) packages, one Keystone and two regions (RegionOne, RegionTwo), each with its own
# nova-api, conductor, scheduler, compute (fake driver), placement, neutron (ML2, no agents) and
# glance, on their own ports and databases. Everything binds to 127.0.0.1. Re-runnable: packages,
# databases and schema are kept between runs; processes are not.
#
#   scripts/openstack.sh up      install what is missing, start everything, wait until a server can
#                                boot in both regions; prints the env file (OS_* for the admin) on stdout
#   scripts/openstack.sh down    stop exactly the processes `up` started (their pids are in the state dir)
#   scripts/openstack.sh status  list the processes `up` started and whether they run
#
#   CHEOPS_OPENSTACK_STATE  state dir: configs, pids, logs, env file (default /tmp/cheops-openstack)
#   CHEOPS_OPENSTACK_REUSE  1: `up` keeps an OpenStack an earlier `up` left running (for development)
#   CHEOPS_OPENSTACK_PORT   base port (default 15000): keystone BASE, mariadb BASE+306, rabbitmq
#                           BASE+672, epmd BASE+369, region N: nova BASE+N*1000+774, placement +778,
#                           neutron +696, glance +292
#
# Needs root (apt, setpriv). See shared/OPENSTACK.md for why each setting is what it is.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
unset PYTHONPATH PYTHONHOME

STATE=${CHEOPS_OPENSTACK_STATE:-/tmp/cheops-openstack}
BASE=${CHEOPS_OPENSTACK_PORT:-15000}
PW=cheops-openstack
ADMIN_PW=cheops-admin
REGIONS="1 2"
PACKAGES="keystone nova-api nova-conductor nova-scheduler neutron-api glance-api placement-api
  mariadb-server python3-pymysql rabbitmq-server python3-keystoneclient"
DB_PORT=$((BASE + 306))
KS_PORT=$BASE
RABBIT_PORT=$((BASE + 672))
EPMD_PORT=$((BASE + 369))
DB="mysql+pymysql://os:$PW@127.0.0.1:$DB_PORT"
# Debian's uwsgi with its python plugin built in, as its init scripts run it.
UWSGI=

log() { echo "openstack: $(date +%T) $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
region_name() { [ "$1" = 1 ] && echo RegionOne || echo RegionTwo; }
port() { echo $((BASE + $1 * 1000 + $2)); } # port REGION OFFSET

install_packages() {
  local missing=""
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  log "installing$missing (about 90 s cold)"
  # Every debconf question of Debian's OpenStack packages defaults to false; say so explicitly, so
  # that no postinst runs dbconfig, db_sync or a bootstrap of its own.
  for p in keystone nova-common nova-api neutron-common neutron-api glance-common glance-api \
    placement-common placement-api; do
    for q in configure_db register-endpoint configure_ksat configure_rabbit configure_api-endpoint \
      create-admin-tenant; do
      echo "$p $p/$q boolean false"
    done
  done | debconf-set-selections
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  # shellcheck disable=SC2086
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends -o Dpkg::Options::=--force-confold $PACKAGES >&2
  # The packages start MariaDB and RabbitMQ through their init scripts where they can; this script
  # runs its own, on its own ports.
  service rabbitmq-server stop >/dev/null 2>&1 || true
  service mariadb stop >/dev/null 2>&1 || true
  pkill -u rabbitmq >/dev/null 2>&1 || true
}

# start NAME USER CMD... runs CMD in the background as USER, its output in logs/NAME.log, its pid in
# pids/NAME.pid. setpriv execs, so the pid is the daemon's own.
start() {
  local name=$1 user=$2
  shift 2
  local -a priv=()
  [ "$user" != root ] && priv=(setpriv --reuid "$user" --regid "$user" --init-groups)
  setsid "${priv[@]}" "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

stop_all() {
  [ -d "$STATE/pids" ] || return 0
  local pids=() f pid
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # uwsgi workers and RabbitMQ's children die with their parents; make sure of it.
  for pid in "${pids[@]}"; do pkill -KILL -s "$pid" 2>/dev/null || true; done
  rm -f "$STATE"/pids/*.pid
}

# wait_http URL NAME: until URL answers any HTTP status (the app behind the socket is loaded).
wait_http() {
  /usr/bin/python3 - "$1" <<'PY' || die "$2 did not answer at $1; see $STATE/logs/$2.log"
import sys, time, urllib.request, urllib.error
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=5); sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.3)
sys.exit(1)
PY
}

wait_port() { # wait_port PORT NAME [SECONDS]
  local deadline=$((SECONDS + ${3:-60}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "$2 did not listen on 127.0.0.1:$1; see $STATE/logs/$2.log"
    sleep 0.3
  done
}

# synced NAME CMD... runs a schema sync once: a marker in the database's own folder says it ran for
# this package version.
synced() {
  local name=$1 ver
  shift
  ver=$(dpkg-query -W -f='${Version}' python3-"${name%%-*}" 2>/dev/null || echo unknown)
  local marker=/var/lib/mysql/cheops-synced-$name-$ver
  [ -e "$marker" ] && return 0
  log "schema: $name"
  "$@" >>"$STATE/logs/sync-$name.log" 2>&1 || die "schema sync $name; see $STATE/logs/sync-$name.log"
  touch "$marker"
}

sql() { mysql -S /run/mysqld/cheops.sock -u root "$@"; }

start_mariadb() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
  start mariadb root mariadbd --user=mysql --bind-address=127.0.0.1 --port="$DB_PORT" \
    --socket=/run/mysqld/cheops.sock --skip-name-resolve --innodb-flush-log-at-trx-commit=0 --max-connections=1000
  wait_port "$DB_PORT" mariadb
  local dbs="keystone"
  for r in $REGIONS; do dbs="$dbs nova_api_$r nova_$r nova_cell0_$r neutron_$r glance_$r placement_$r"; done
  {
    for d in $dbs; do echo "CREATE DATABASE IF NOT EXISTS $d;"; done
    echo "CREATE USER IF NOT EXISTS 'os'@'%' IDENTIFIED BY '$PW';"
    echo "GRANT ALL PRIVILEGES ON *.* TO 'os'@'%';"
  } | sql
}

# uwsgi_ini NAME PORT WSGI-FILE [PYARGV [PROCESSES THREADS]] writes a small uwsgi config (default two
# processes of four threads) with Connection: close (Go clients reuse pooled connections, which
# uwsgi's --http-socket closes without saying so).
uwsgi_ini() {
  cat >"$STATE/etc/$1-uwsgi.ini" <<EOF
[uwsgi]
http-socket = 127.0.0.1:$2
wsgi-file = $3
master = true
processes = ${5:-2}
threads = ${6:-4}
lazy-apps = true
die-on-term = true
buffer-size = 65535
add-header = Connection: close
worker-reload-mercy = 5
reload-mercy = 5
${4:+pyargv = $4}
EOF
}

keystone_up() {
  cat >/etc/keystone/keystone.conf <<EOF
[database]
connection = $DB/keystone
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/
EOF
  synced keystone-db setpriv --reuid keystone --regid keystone --init-groups keystone-manage db_sync
  [ -e /etc/keystone/fernet-keys/0 ] ||
    keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone >>"$STATE/logs/keystone-setup.log" 2>&1
  [ -e /etc/keystone/credential-keys/0 ] ||
    keystone-manage credential_setup --keystone-user keystone --keystone-group keystone >>"$STATE/logs/keystone-setup.log" 2>&1
  chown -R keystone:keystone /var/log/keystone "$STATE/logs" 2>/dev/null || true
  local url="http://127.0.0.1:$KS_PORT/v3/"
  synced keystone-bootstrap-$KS_PORT setpriv --reuid keystone --regid keystone --init-groups \
    keystone-manage bootstrap --bootstrap-password "$ADMIN_PW" --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$url" --bootstrap-public-url "$url" --bootstrap-internal-url "$url"
  uwsgi_ini keystone "$KS_PORT" /usr/bin/keystone-wsgi-public
  start keystone keystone $UWSGI --ini "$STATE/etc/keystone-uwsgi.ini"
  wait_port "$KS_PORT" keystone
}

# catalog creates, idempotently, the service project and users, the services, both regions and their
# endpoints, in one python-keystoneclient session (the openstack CLI takes ~2 s per call).
catalog() {
  /usr/bin/python3 - "$KS_PORT" "$BASE" "$PW" "$ADMIN_PW" <<'PY' >>"$STATE/logs/catalog.log" 2>&1 || die "catalog; see $STATE/logs/catalog.log"
import sys, time
from keystoneauth1.identity import v3
from keystoneauth1 import session
from keystoneclient.v3 import client
ks_port, base, pw, admin_pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
auth = v3.Password(auth_url=f"http://127.0.0.1:{ks_port}/v3", username="admin", password=admin_pw,
                   project_name="admin", user_domain_id="default", project_domain_id="default")
sess = session.Session(auth=auth)
for i in range(100):
    try:
        kc = client.Client(session=sess); kc.projects.list(); break
    except Exception as e:
        if i == 99: raise
        time.sleep(0.3)
def one(items): return items[0] if items else None
project = one(kc.projects.list(name="service")) or kc.projects.create("service", "default")
admin_role = one(kc.roles.list(name="admin"))
for name in ("nova", "neutron", "glance", "placement"):
    u = one(kc.users.list(name=name, domain="default"))
    u = kc.users.update(u, password=pw) if u else kc.users.create(name, domain="default", password=pw)
    kc.roles.grant(admin_role, user=u, project=project)
services = {"compute": ("nova", 774, "/v2.1"), "network": ("neutron", 696, ""), "image": ("glance", 292, ""),
            "placement": ("placement", 778, "")}
for rid, n in (("RegionOne", 1), ("RegionTwo", 2)):
    if not one([r for r in kc.regions.list() if r.id == rid]):
        kc.regions.create(id=rid)
# Keystone serves both regions; services look it up in their own region.
services["identity"] = ("keystone", None, "/v3/")
for typ, (name, off, path) in services.items():
    svc = one(kc.services.list(type=typ)) or kc.services.create(name, type=typ)
    for rid, n in (("RegionOne", 1), ("RegionTwo", 2)):
        url = f"http://127.0.0.1:{ks_port if off is None else base + n * 1000 + off}{path}"
        for iface in ("public", "internal", "admin"):
            e = one(kc.endpoints.list(service=svc, interface=iface, region=rid))
            if e is None:
                kc.endpoints.create(svc, url, interface=iface, region=rid)
            elif e.url != url:
                kc.endpoints.update(e, url=url)
print("catalog ok")
PY
}

rabbit_up() {
  cat >/etc/rabbitmq/rabbitmq-env.conf <<EOF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$RABBIT_PORT
DIST_PORT=$((RABBIT_PORT + 1))
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=$EPMD_PORT
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
  # epmd runs in the foreground, as our own child, so that `down` stops it by its pid.
  start epmd rabbitmq env ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$EPMD_PORT"
  wait_port "$EPMD_PORT" epmd
  start rabbitmq rabbitmq env HOME=/var/lib/rabbitmq ERL_EPMD_PORT="$EPMD_PORT" /usr/lib/rabbitmq/bin/rabbitmq-server
  wait_port "$RABBIT_PORT" rabbitmq 90
  local ctl=(env HOME=/var/lib/rabbitmq ERL_EPMD_PORT="$EPMD_PORT" setpriv --reuid rabbitmq --regid rabbitmq --init-groups rabbitmqctl -q)
  "${ctl[@]}" await_startup >/dev/null
  "${ctl[@]}" list_users | grep -q '^openstack' || "${ctl[@]}" add_user openstack "$PW" >/dev/null
  for r in $REGIONS; do
    "${ctl[@]}" add_vhost "r$r" >/dev/null 2>&1 || true
    "${ctl[@]}" set_permissions -p "r$r" openstack ".*" ".*" ".*" >/dev/null
  done
}

# authtoken REGION SERVICE: the [keystone_authtoken] section of a service's config.
authtoken() {
  echo "[keystone_authtoken]"
  echo "www_authenticate_uri = http://127.0.0.1:$KS_PORT/v3"
  service_auth "$@"
}

service_auth() { # service_auth REGION USER: a keystoneauth password section body
  cat <<EOF
auth_type = password
auth_url = http://127.0.0.1:$KS_PORT/v3
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $PW
region_name = $(region_name "$1")
EOF
}

region_configs() {
  local r=$1 d="$STATE/etc/r$1"
  mkdir -p /var/lib/neutron/lock && chown neutron:neutron /var/lib/neutron/lock
  mkdir -p "$d/nova" "$d/neutron" "$d/glance" "$d/placement" "/var/lib/glance/images-r$r" "/var/lib/nova/r$r"
  chown glance:glance "/var/lib/glance/images-r$r"
  chown nova:nova "/var/lib/nova/r$r"
  cp /etc/nova/api-paste.ini "$d/nova/api-paste.ini"
  cat >"$d/nova/nova.conf" <<EOF
[DEFAULT]
host = cheops-compute-$r
state_path = /var/lib/nova/r$r
transport_url = rabbit://openstack:$PW@127.0.0.1:$RABBIT_PORT/r$r
compute_driver = fake.FakeDriver
graceful_shutdown_timeout = 5
my_ip = 127.0.0.1
[api]
auth_strategy = keystone
[api_database]
connection = $DB/nova_api_$r
[database]
connection = $DB/nova_$r
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 5
[wsgi]
api_paste_config = $d/nova/api-paste.ini
[oslo_concurrency]
lock_path = /var/lib/nova/r$r/lock
[glance]
region_name = $(region_name "$r")
[cinder]
os_region_name = $(region_name "$r")
$(authtoken "$r" nova)
[placement]
$(service_auth "$r" placement)
[neutron]
$(service_auth "$r" neutron)
[service_user]
send_service_user_token = false
[vnc]
enabled = false
EOF
  cat >"$d/placement/placement.conf" <<EOF
[api]
auth_strategy = keystone
[placement_database]
connection = $DB/placement_$r
$(authtoken "$r" placement)
EOF
  cat >"$d/neutron/neutron.conf" <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = fake://
dhcp_agent_notification = false
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
agent_down_time = 2147483647
state_path = /var/lib/neutron
[database]
connection = $DB/neutron_$r
$(authtoken "$r" neutron)
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
EOF
  cat >"$d/neutron/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
[ml2_type_flat]
flat_networks = physnet1
[securitygroup]
firewall_driver = noop
EOF
  cat >"$d/glance/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $(port "$r" 292)
workers = 0
[database]
connection = $DB/glance_$r
$(authtoken "$r" glance)
[paste_deploy]
flavor = keystone
config_file = $d/glance/glance-api-paste.ini
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = /var/lib/glance/images-r$r/
EOF
  cp /etc/glance/glance-api-paste.ini "$d/glance/glance-api-paste.ini"
  chmod -R a+rX "$STATE/etc"
}

region_schema() {
  local r=$1 d="$STATE/etc/r$1" asn=(setpriv --reuid nova --regid nova --init-groups)
  local nm=("${asn[@]}" nova-manage --config-file "$d/nova/nova.conf")
  synced "nova-api-r$r" "${nm[@]}" api_db sync
  synced "nova-cell0-r$r" "${nm[@]}" cell_v2 map_cell0 --database_connection "$DB/nova_cell0_$r"
  synced "nova-cell1-r$r" "${nm[@]}" cell_v2 create_cell --name=cell1 --transport-url "rabbit://openstack:$PW@127.0.0.1:$RABBIT_PORT/r$r" --database_connection "$DB/nova_$r"
  synced "nova-db-r$r" "${nm[@]}" db sync
  synced "neutron-db-r$r" setpriv --reuid neutron --regid neutron --init-groups neutron-db-manage \
    --config-file "$d/neutron/neutron.conf" --config-file "$d/neutron/ml2_conf.ini" upgrade heads
  synced "glance-db-r$r" setpriv --reuid glance --regid glance --init-groups glance-manage \
    --config-file "$d/glance/glance-api.conf" db_sync
  synced "placement-db-r$r" setpriv --reuid placement --regid placement --init-groups \
    placement-manage --config-file "$d/placement/placement.conf" db sync
  # The ports of servers are bound by ML2/openvswitch for this row's host; no L2 agent runs
  # (OPENSTACK.md, "Booting on a network").
  sql "neutron_$r" <<EOF
INSERT INTO agents (id, agent_type, \`binary\`, topic, host, admin_state_up, created_at, started_at,
  heartbeat_timestamp, configurations, \`load\`, availability_zone, resources_synced)
SELECT UUID(), 'Open vSwitch agent', 'neutron-openvswitch-agent', 'N/A', 'cheops-compute-$r', 1, NOW(), NOW(), NOW(),
  '{"tunnel_types": ["vxlan"], "bridge_mappings": {"physnet1": "br-ex"}}', 0, NULL, 1
FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM agents WHERE host = 'cheops-compute-$r' AND agent_type = 'Open vSwitch agent');
EOF
}

region_start() {
  local r=$1 d="$STATE/etc/r$1"
  # nova-api and neutron monkey-patch with eventlet, which does not mix with uwsgi's threads (seen:
  # every nova-api thread hung after a while): one thread per process.
  uwsgi_ini "nova-api-r$r" "$(port "$r" 774)" /usr/bin/nova-api-wsgi "" 3 1
  uwsgi_ini "placement-r$r" "$(port "$r" 778)" /usr/bin/placement-api
  uwsgi_ini "neutron-r$r" "$(port "$r" 696)" /usr/bin/neutron-api \
    "--config-file=$d/neutron/neutron.conf --config-file=$d/neutron/ml2_conf.ini" 3 1
  start "nova-api-r$r" nova env OS_NOVA_CONFIG_DIR="$d/nova" $UWSGI --ini "$STATE/etc/nova-api-r$r-uwsgi.ini"
  start "placement-r$r" placement env OS_PLACEMENT_CONFIG_DIR="$d/placement" $UWSGI --ini "$STATE/etc/placement-r$r-uwsgi.ini"
  start "neutron-r$r" neutron $UWSGI --ini "$STATE/etc/neutron-r$r-uwsgi.ini"
  start "glance-r$r" glance glance-api --config-file "$d/glance/glance-api.conf"
}

# region_workers starts conductor and scheduler (they need the database and RabbitMQ only) and, once
# placement answers, compute: a compute that finds placement not answering at its start only retries
# a minute later.
region_workers() {
  local r=$1 d="$STATE/etc/r$1"
  start "nova-conductor-r$r" nova nova-conductor --config-file "$d/nova/nova.conf"
  start "nova-scheduler-r$r" nova nova-scheduler --config-file "$d/nova/nova.conf"
  wait_http "http://127.0.0.1:$(port "$r" 778)/" "placement-r$r"
  start "nova-compute-r$r" nova /usr/bin/python3 -c 'import sys; from nova.cmd.compute import main; sys.exit(main())' \
    --config-file "$d/nova/nova.conf"
}

region_ready() {
  local r=$1 d="$STATE/etc/r$1"
  wait_http "http://127.0.0.1:$(port "$r" 696)/" "neutron-r$r"
  wait_http "http://127.0.0.1:$(port "$r" 292)/" "glance-r$r"
  wait_http "http://127.0.0.1:$(port "$r" 774)/" "nova-api-r$r"
  # A service row from an earlier run still reads "up" for a while: wait for this run's reports, and
  # for compute's resource provider, then map the host to cell1.
  local deadline=$((SECONDS + 120)) since
  since=$(date -u -d @"$START_EPOCH" '+%F %T')
  until [ "$(sql -N "nova_$r" -e "SELECT COUNT(DISTINCT \`binary\`) FROM services WHERE deleted = 0 AND (updated_at >= '$since' OR created_at >= '$since') AND \`binary\` IN ('nova-conductor','nova-scheduler','nova-compute')")" = 3 ] &&
    [ "$(sql -N "placement_$r" -e "SELECT COUNT(*) FROM resource_providers WHERE name = 'cheops-compute-$r'")" = 1 ]; do
    [ $SECONDS -lt $deadline ] || die "nova services of region $r did not report; see $STATE/logs/nova-*-r$r.log"
    sleep 1
  done
  setpriv --reuid nova --regid nova --init-groups nova-manage --config-file "$d/nova/nova.conf" \
    cell_v2 discover_hosts >>"$STATE/logs/discover-r$r.log" 2>&1
}

write_env() {
  cat >"$STATE/env" <<EOF
OS_AUTH_URL=http://127.0.0.1:$KS_PORT/v3
OS_USERNAME=admin
OS_PASSWORD=$ADMIN_PW
OS_PROJECT_NAME=admin
OS_USER_DOMAIN_NAME=Default
OS_PROJECT_DOMAIN_NAME=Default
OS_DOMAIN_NAME=Default
OS_REGION_NAME=RegionOne
OS_IDENTITY_API_VERSION=3
CHEOPS_OPENSTACK_REGIONS=RegionOne,RegionTwo
CHEOPS_OPENSTACK_DB_PORT=$DB_PORT
EOF
  echo "$STATE/env"
}

# running reports whether every process of an earlier `up` still runs.
running() {
  [ -e "$STATE/env" ] && [ -e "$STATE/pids/nova-compute-r2.pid" ] || return 1
  local f
  for f in "$STATE"/pids/*.pid; do kill -0 "$(cat "$f")" 2>/dev/null || return 1; done
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (apt-get, setpriv)"
  if [ "${CHEOPS_OPENSTACK_REUSE:-}" = 1 ] && running; then
    log "reusing the running OpenStack (CHEOPS_OPENSTACK_REUSE=1)"
    echo "$STATE/env"
    return 0
  fi
  install_packages
  UWSGI=$(command -v uwsgi_python3 || command -v uwsgi_python311) || die "no uwsgi with its python3 plugin"
  mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/etc"
  chmod 755 "$STATE" "$STATE/etc"
  chmod 1777 "$STATE/logs"
  stop_all
  START_EPOCH=$(date +%s)
  local t0=$SECONDS
  start_mariadb
  log "mariadb up at $((SECONDS - t0)) s"
  keystone_up
  log "keystone up at $((SECONDS - t0)) s"
  # RabbitMQ boots (Erlang, some 20 s) while the catalog is written and the APIs start: only the
  # workers need it. (The APIs started before the catalog, all loading at once, made it slower.)
  rabbit_up &
  local rabbit=$!
  catalog
  log "catalog at $((SECONDS - t0)) s"
  for r in $REGIONS; do region_configs "$r"; done
  for r in $REGIONS; do region_schema "$r"; done
  log "schemas at $((SECONDS - t0)) s"
  for r in $REGIONS; do region_start "$r"; done
  log "APIs started at $((SECONDS - t0)) s"
  wait "$rabbit" || die "rabbitmq; see $STATE/logs/rabbitmq.log"
  log "rabbitmq up at $((SECONDS - t0)) s"
  for r in $REGIONS; do region_workers "$r"; done
  log "workers started at $((SECONDS - t0)) s"
  for r in $REGIONS; do region_ready "$r"; done
  log "up in $((SECONDS - t0)) s (after packages)"
  write_env
}

status() {
  local f
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then s=running; else s=stopped; fi
    printf '%-24s %-8s %s\n' "$(basename "$f" .pid)" "$(cat "$f")" "$s"
  done
}

case "${1:-}" in
up) up ;;
down) stop_all ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
