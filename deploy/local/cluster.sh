#!/usr/bin/env bash
# A cluster on loopback for fault tests and for trying gridcase by hand: a 3-node RabbitMQ cluster and a
# PostgreSQL primary + synchronous standby with automatic failover (pg_auto_failover: a monitor and two data
# nodes), everything under one directory, on free ports. Debian's packages only (rabbitmq-server,
# postgresql, postgresql-15-auto-failover, pg-auto-failover-cli); no root service, no systemd, no Docker.
#
#   cluster.sh start DIR                start it all; prints NAME=VALUE lines (below) on stdout
#   cluster.sh stop DIR                 stop it all, by the pids recorded under DIR
#   cluster.sh env DIR                  print the NAME=VALUE lines again
#   cluster.sh kill DIR rabbitmq|postgres N
#                                       SIGKILL node N (1-3 for RabbitMQ, 1-2 for PostgreSQL) and all its
#                                       processes: a crash of that machine
#   cluster.sh revive DIR rabbitmq|postgres N
#                                       start a killed node again (it rejoins: RabbitMQ with its data, a
#                                       PostgreSQL node as the standby of whoever is primary now; returns
#                                       once it is catching up, at most 120 s)
#   cluster.sh state DIR                who is who: pg_auto_failover's state and RabbitMQ's cluster status
#   cluster.sh cut DIR N                cut RabbitMQ node N off the network (a partition: its packets are
#                                       dropped, nothing is closed); needs the nodes' own namespaces (below)
#   cluster.sh heal DIR N               connect it again
#
# RabbitMQ's network: run as root (and unless GRIDCASE_CLUSTER_NETNS=0), each RabbitMQ node runs in a network
# namespace of its own with its own address (10.X.Y.N on a bridge; the host is 10.X.Y.254), its own epmd,
# and is named rabbit-PORT@10.X.Y.N, so that one node can be cut off and healed. Otherwise (not root, or the
# kernel refuses namespaces; the reason is logged and kept in DIR/rabbitmq/netns-refused) every node is on
# 127.0.0.1 behind one epmd, and `cut` refuses. Either way the cluster detects a silent node within about
# 10 s (net_ticktime 10, Erlang's default is 60), and the minority side of a partition pauses.
#
# The lines `start` and `env` print, NAME=VALUE with every node listed (values hold ';' and '&': to export
# them, `while IFS='=' read -r k v; do export "$k=$v"; done < <(cluster.sh env DIR)`):
#   GRIDCASE_BROKER_URL=amqp://guest:guest@127.0.0.1:P1/%2F;amqp://…:P2/%2F;amqp://…:P3/%2F
#   GRIDCASE_INTAKE_DATABASE_URL=postgresql+psycopg://postgres@/gridcase_intake?host=127.0.0.1:Q1&host=127.0.0.1:Q2
#   GRIDCASE_DISPATCH_DATABASE_URL=…, GRIDCASE_ESCALATION_DATABASE_URL=…   (databases created by start)
#   GRIDCASE_CLUSTER_POSTGRES_ADMIN_URL=postgresql://postgres@127.0.0.1:Q1,127.0.0.1:Q2/postgres?target_session_attrs=read-write
#   GRIDCASE_CLUSTER_DIR=DIR
#
# The failover is tuned for a test bench (the monitor checks every second and gives a node up after 3 s;
# it waits 5 s for a dead primary to confirm its demotion): commits are synchronous, so a primary cut off
# from the monitor cannot acknowledge a write the promoted standby lacks. Everything else goes to stderr.
# Processes are only ever signalled by the pids recorded under DIR, never by name.
#
# Env: RABBITMQ_BIN_DIR, PG_BINDIR (default: the newest /usr/lib/postgresql/*/bin with pg_auto_failover),
#      GRIDCASE_CLUSTER_NETNS=0 (keep the RabbitMQ nodes on 127.0.0.1 even as root).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RMQ_NODES=3
PG_NODES=2
DATABASES=(intake dispatch escalation)

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

# --- PostgreSQL under pg_auto_failover --------------------------------------------------------------------

find_pg_bindir() {
    if [[ -n "${PG_BINDIR:-}" ]]; then echo "$PG_BINDIR"; return; fi
    local d v best=""
    for d in /usr/lib/postgresql/*/bin; do
        v="$(basename "$(dirname "$d")")"
        [[ -x "$d/initdb" && -f "/usr/share/postgresql/$v/extension/pgautofailover.control" ]] && best="$d"
    done
    [[ -n "$best" ]] || die "pg_auto_failover not found (apt-get install postgresql-15-auto-failover pg-auto-failover-cli)"
    echo "$best"
}

# as_pg CMD...: run as the postgres user when root (PostgreSQL refuses root), with pg_autoctl's own files
# (its XDG directories) under DIR so two clusters on one machine never meet
pg_prefix() {
    PG_PREFIX=(env "XDG_CONFIG_HOME=$BASE/postgres/xdg/config" "XDG_DATA_HOME=$BASE/postgres/xdg/data"
               "XDG_RUNTIME_DIR=$BASE/postgres/xdg/run" "PATH=$PG_BINDIR:/usr/bin:/bin" "PGCONNECT_TIMEOUT=3")
    if ((EUID == 0)); then PG_PREFIX=(runuser -u postgres -- "${PG_PREFIX[@]}"); fi
}

as_pg() {
    pg_prefix
    "${PG_PREFIX[@]}" "$@"
}

pg_port() { cat "$BASE/postgres/$1.port"; }

# start_pg NAME ARGS...: `pg_autoctl ARGS` in a session of its own, its pid (= process group) recorded
start_pg() {
    local name="$1"
    shift
    pg_prefix
    (cd "$BASE/postgres" && exec setsid "${PG_PREFIX[@]}" pg_autoctl "$@" </dev/null >>"$BASE/postgres/$name.log" 2>&1) &
    echo $! >"$BASE/postgres/$name.pid"
}

monitor_sql() { as_pg psql -X -qAt -h 127.0.0.1 -p "$(pg_port monitor)" -U postgres -d pg_auto_failover -c "$1"; }

# the reported state of data node N (single, wait_primary, primary, secondary, ...), empty if unknown
pg_state() {
    monitor_sql "select reportedstate from pgautofailover.node where nodename = 'node$1'" 2>/dev/null || true
}

wait_pg_state() {
    local n="$1" pattern="$2" timeout="$3" deadline=$((SECONDS + $3))
    until [[ "$(pg_state "$n")" =~ ^($pattern)$ ]]; do
        ((SECONDS < deadline)) || { tail -n 30 "$BASE/postgres/node$n.log" >&2; die "node$n not $pattern after ${timeout}s"; }
        group_running "$(read_pid "$BASE/postgres/node$n.pid")" \
            || { tail -n 30 "$BASE/postgres/node$n.log" >&2; die "node$n exited"; }
        sleep 0.3
    done
}

start_monitor() {
    local port="$1"
    echo "$port" >"$BASE/postgres/monitor.port"
    start_pg monitor create monitor --pgdata "$BASE/postgres/monitor" --pgctl "$PG_BINDIR/pg_ctl" \
        --pgport "$port" --hostname 127.0.0.1 --auth trust --no-ssl --run
    local deadline=$((SECONDS + 60))
    until monitor_sql "select 1" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { tail -n 30 "$BASE/postgres/monitor.log" >&2; die "monitor did not start"; }
        sleep 0.3
    done
    # a test bench's failover: check every second, a node is down after 3 s, a dead primary is given 5 s
    local setting
    for setting in health_check_period=1000 health_check_timeout=1000 health_check_max_retries=1 \
        health_check_retry_delay=500 node_considered_unhealthy_timeout=3000 primary_demote_timeout=5000; do
        monitor_sql "alter system set pgautofailover.${setting%%=*} = ${setting#*=}" >/dev/null
    done
    monitor_sql "select pg_reload_conf()" >/dev/null
}

create_pg_node() {
    local n="$1" port="$2"
    echo "$port" >"$BASE/postgres/node$n.port"
    start_pg "node$n" create postgres --pgdata "$BASE/postgres/node$n" --pgctl "$PG_BINDIR/pg_ctl" \
        --pgport "$port" --pghost 127.0.0.1 --listen 127.0.0.1 --hostname 127.0.0.1 --name "node$n" \
        --monitor "postgres://autoctl_node@127.0.0.1:$(pg_port monitor)/pg_auto_failover?sslmode=disable" \
        --auth trust --no-ssl --run
}

# The standby's base backup waits for a checkpoint on the primary, spread over minutes by default: asking
# the primary for an immediate one meanwhile finishes it at once.
hurry_checkpoint() {
    local primary="$1" standby="$2" deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)) && [[ ! "$(pg_state "$standby")" =~ ^(catchingup|secondary)$ ]]; do
        as_pg psql -X -qAt -h 127.0.0.1 -p "$(pg_port "node$primary")" -U postgres -d postgres -c checkpoint \
            >/dev/null 2>&1 || true
        sleep 1
    done
}

start_postgres() {
    local t0=$SECONDS n
    mkdir -p "$BASE/postgres/xdg"
    if ((EUID == 0)); then chown -R postgres:postgres "$BASE/postgres"; fi
    start_monitor "$("$HERE/free-port.sh")"
    create_pg_node 1 "$("$HERE/free-port.sh")"
    wait_pg_state 1 "single|wait_primary|primary" 60
    for ((n = 2; n <= PG_NODES; n++)); do
        create_pg_node "$n" "$("$HERE/free-port.sh")"
        hurry_checkpoint 1 "$n"
        wait_pg_state "$n" secondary 120
    done
    wait_pg_state 1 primary 60
    local db
    for db in "${DATABASES[@]}"; do
        as_pg psql -X -qAt "$(admin_url)" -c "create database gridcase_$db" >/dev/null
    done
    log "PostgreSQL up in $((SECONDS - t0)) s: monitor on $(pg_port monitor), primary node1 on $(pg_port node1), standby node2 on $(pg_port node2)"
}

hosts_query() {
    local n out=""
    for ((n = 1; n <= PG_NODES; n++)); do out+="${out:+&}host=127.0.0.1:$(pg_port "node$n")"; done
    echo "$out"
}

# libpq's own multi-host form (psql, psycopg.connect); the services' URLs use SQLAlchemy's (?host=h:p&host=h:p)
admin_url() {
    local n hosts=""
    for ((n = 1; n <= PG_NODES; n++)); do hosts+="${hosts:+,}127.0.0.1:$(pg_port "node$n")"; done
    echo "postgresql://postgres@$hosts/postgres?target_session_attrs=read-write"
}

stop_pg_process() {
    local name="$1" pid
    pid="$(read_pid "$BASE/postgres/$name.pid")"
    if group_running "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true     # pg_autoctl stops its Postgres cleanly
        wait_group_gone "$pid" 30 || kill -KILL -- "-$pid" 2>/dev/null || true
        wait_group_gone "$pid" 5 || log "warning: processes of $name ($pid) still running"
    fi
    # a Postgres left behind by a killed pg_autoctl (it runs in the keeper's group, but be sure)
    local data="$BASE/postgres/$name" postmaster
    postmaster="$(read_pid "$data/postmaster.pid")"
    if alive "$postmaster" postgres; then
        kill -QUIT "$postmaster" 2>/dev/null || true
        wait_gone "$postmaster" 10 || kill -KILL "$postmaster" 2>/dev/null || true
    fi
}

# --- RabbitMQ --------------------------------------------------------------------------------------------

rmq_base() { echo "$BASE/rabbitmq/node$1"; }
rmq_port() { cat "$(rmq_base "$1")/port"; }

# --- RabbitMQ's network: a namespace per node on a bridge -----------------------------------------------

net_file() { echo "$BASE/rabbitmq/network"; }

# NET_ID (names), NET_PREFIX (10.X.Y) of the cluster's network, if it has one
load_network() {
    NET_ID="" NET_PREFIX=""
    # shellcheck disable=SC1090
    [[ -f "$(net_file)" ]] && . "$(net_file)"
    return 0
}

netns_name() { echo "gridcase-$NET_ID-rmq$1"; }
bridge_name() { echo "gcb$NET_ID"; }
veth_host() { echo "gch$NET_ID$1"; }
node_address() { if [[ -n "$NET_ID" ]]; then echo "$NET_PREFIX.$1"; else echo 127.0.0.1; fi; }

# Make the bridge and a namespace per node; on any refusal undo it, say why, and leave NET_ID empty.
make_network() {
    NET_ID="" NET_PREFIX=""
    local why=""
    if [[ "${GRIDCASE_CLUSTER_NETNS:-1}" == 0 ]]; then
        why="GRIDCASE_CLUSTER_NETNS=0"
    elif ((EUID != 0)); then
        why="network namespaces need root"
    elif ! command -v ip >/dev/null; then
        why="ip (iproute2) not found"
    fi
    if [[ -z "$why" ]]; then
        NET_ID="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 6)"
        local x y tries=0
        while :; do                         # a 10.X.Y.0/24 no interface of this machine uses
            x=$((RANDOM % 200 + 50)) y=$((RANDOM % 250 + 1))
            ip -4 -o addr show | grep -q " 10\.$x\.$y\." || break
            ((++tries < 50)) || { why="no free 10.X.Y.0/24"; break; }
        done
        NET_PREFIX="10.$x.$y"
        printf 'NET_ID=%s\nNET_PREFIX=%s\n' "$NET_ID" "$NET_PREFIX" >"$(net_file)"
    fi
    if [[ -z "$why" ]] && ! why="$(network_up 2>&1)"; then
        network_down
        why="the kernel refused: ${why:-?}"
    fi
    if [[ -n "$why" ]]; then
        rm -f "$(net_file)"
        NET_ID="" NET_PREFIX=""
        echo "$why" >"$BASE/rabbitmq/netns-refused"
        log "RabbitMQ nodes on 127.0.0.1 without namespaces of their own ($why): \`cut\` will refuse"
        return 0
    fi
    log "RabbitMQ nodes in namespaces $(netns_name 1)..$RMQ_NODES on bridge $(bridge_name) ($NET_PREFIX.0/24)"
}

network_up() {
    set -e
    local n ns
    ip link add "$(bridge_name)" type bridge
    ip addr add "$NET_PREFIX.254/24" dev "$(bridge_name)"
    ip link set "$(bridge_name)" up
    for ((n = 1; n <= RMQ_NODES; n++)); do
        ns="$(netns_name "$n")"
        ip netns add "$ns"
        ip link add "$(veth_host "$n")" type veth peer name eth0 netns "$ns"
        ip link set "$(veth_host "$n")" master "$(bridge_name)" up
        ip -n "$ns" addr add "$NET_PREFIX.$n/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
    done
}

network_down() {
    [[ -n "$NET_ID" ]] || return 0
    local n
    for ((n = 1; n <= RMQ_NODES; n++)); do
        ip netns del "$(netns_name "$n")" 2>/dev/null || true     # its veth pair goes with it
    done
    ip link del "$(bridge_name)" 2>/dev/null || true
}

# cut|heal N: the host side of node N's cable down or up
set_cable() {
    load_network
    [[ -n "$NET_ID" ]] || die "the RabbitMQ nodes have no namespaces of their own here ($(cat "$BASE/rabbitmq/netns-refused" 2>/dev/null || echo "no network")): nothing to cut"
    ip link set "$(veth_host "$2")" "$1"
}

# --- RabbitMQ --------------------------------------------------------------------------------------------

rmq_base() { echo "$BASE/rabbitmq/node$1"; }
rmq_port() { cat "$(rmq_base "$1")/port"; }

start_rabbitmq() {
    local t0=$SECONDS n names="" epmd_port cookie pids=()
    mkdir -p "$BASE/rabbitmq"
    make_network
    epmd_port="$("$HERE/free-port.sh")"
    echo "$epmd_port" >"$BASE/rabbitmq/epmd.port"
    if [[ -z "$NET_ID" ]]; then         # one epmd for the nodes on 127.0.0.1; in namespaces each has its own
        setsid epmd -address 127.0.0.1 -port "$epmd_port" </dev/null >>"$BASE/rabbitmq/epmd.log" 2>&1 &
        echo $! >"$BASE/rabbitmq/epmd.pid"
        for _ in $(seq 100); do epmd -port "$epmd_port" -names >/dev/null 2>&1 && break; sleep 0.05; done
    fi
    cookie="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
    for ((n = 1; n <= RMQ_NODES; n++)); do
        mkdir -p "$(rmq_base "$n")"
        "$HERE/free-port.sh" --pair 20000 >"$(rmq_base "$n")/port"
        if [[ -n "$NET_ID" ]]; then
            names+=" rabbit-$(rmq_port "$n")@$(node_address "$n")"
        else
            names+=" rabbit-$(rmq_port "$n")@localhost"
        fi
    done
    export RABBITMQ_EPMD_PORT="$epmd_port" RABBITMQ_COOKIE="$cookie" RABBITMQ_CLUSTER_NODES="${names# }" \
        RABBITMQ_NET_TICKTIME=10
    # the first node forms the cluster; the others join it (started together)
    node_env 1 "$HERE/rabbitmq.sh" start "$(rmq_base 1)" "$(rmq_port 1)" >/dev/null
    for ((n = 2; n <= RMQ_NODES; n++)); do
        node_env "$n" "$HERE/rabbitmq.sh" start "$(rmq_base "$n")" "$(rmq_port "$n")" >/dev/null &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || die "a RabbitMQ node failed to start (logs under $BASE/rabbitmq)"; done
    unset RABBITMQ_EPMD_PORT RABBITMQ_COOKIE RABBITMQ_CLUSTER_NODES RABBITMQ_NET_TICKTIME
    local deadline=$((SECONDS + 60)) running
    while true; do
        running="$("$HERE/rabbitmq.sh" ctl "$(rmq_base 1)" eval \
            'try length(rabbit_nodes:list_running()) catch _:_ -> length(rabbit_nodes:all_running()) end.' 2>/dev/null || true)"
        [[ "$running" == "$RMQ_NODES" ]] && break
        ((SECONDS < deadline)) || die "the RabbitMQ cluster has ${running:-?} of $RMQ_NODES nodes running"
        sleep 0.5
    done
    log "RabbitMQ cluster of $RMQ_NODES nodes up in $((SECONDS - t0)) s:$names"
}

# node_env N CMD...: CMD with node N's namespace and address (first start of its base)
node_env() {
    local n="$1"
    shift
    if [[ -n "$NET_ID" ]]; then
        RABBITMQ_NETNS="$(netns_name "$n")" RABBITMQ_ADDRESS="$(node_address "$n")" "$@"
    else
        "$@"
    fi
}

broker_url() {
    local n out=""
    load_network
    for ((n = 1; n <= RMQ_NODES; n++)); do
        out+="${out:+;}amqp://guest:guest@$(node_address "$n"):$(rmq_port "$n")/%2F"
    done
    echo "$out"
}

stop_rabbitmq() {
    local n pids=()
    for ((n = 1; n <= RMQ_NODES; n++)); do
        [[ -f "$(rmq_base "$n")/env.sh" ]] || continue
        "$HERE/rabbitmq.sh" stop "$(rmq_base "$n")" 2>/dev/null &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || log "warning: a RabbitMQ node did not stop cleanly"; done
    local epmd
    epmd="$(read_pid "$BASE/rabbitmq/epmd.pid")"
    if alive "$epmd" epmd; then
        kill -TERM "$epmd" 2>/dev/null || true
        wait_gone "$epmd" 5 || kill -KILL "$epmd" 2>/dev/null || true
    fi
    load_network
    network_down
}

# --- main --------------------------------------------------------------------------------------------------

print_env() {
    [[ -f "$BASE/rabbitmq/node1/port" && -f "$BASE/postgres/node1.port" ]] || die "$BASE holds no cluster"
    local db
    echo "GRIDCASE_BROKER_URL=$(broker_url)"
    for db in "${DATABASES[@]}"; do
        echo "GRIDCASE_${db^^}_DATABASE_URL=postgresql+psycopg://postgres@/gridcase_$db?$(hosts_query)"
    done
    echo "GRIDCASE_CLUSTER_POSTGRES_ADMIN_URL=$(admin_url)"
    echo "GRIDCASE_CLUSTER_DIR=$BASE"
}

node_arg() {
    local kind="$1" n="$2" max
    case "$kind" in
        rabbitmq) max=$RMQ_NODES ;;
        postgres) max=$PG_NODES ;;
        *) usage ;;
    esac
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= max)) || die "$kind nodes are numbered 1..$max"
}

cmd="${1:-}"
[[ -n "$cmd" && -n "${2:-}" ]] || usage
[[ "$cmd" == start ]] && mkdir -p "$2"
[[ -d "$2" ]] || die "no such directory: $2"
BASE="$(cd "$2" && pwd)"
shift 2

case "$cmd" in
    start)
        [[ ! -e "$BASE/rabbitmq" && ! -e "$BASE/postgres" ]] || die "$BASE holds a cluster already (stop it, or use a new DIR)"
        command -v pg_autoctl >/dev/null || die "pg_autoctl not found (apt-get install pg-auto-failover-cli)"
        PG_BINDIR="$(find_pg_bindir)"
        echo "$PG_BINDIR" >"$BASE/pg_bindir"
        chmod 755 "$BASE"
        if ((EUID == 0)); then
            d="$BASE"
            while [[ "$d" != / ]]; do           # the postgres user must be able to reach DIR
                d="$(dirname "$d")"
                runuser -u postgres -- test -x "$d" 2>/dev/null && continue
                [[ "$d" == /tmp/* && -O "$d" ]] && chmod 755 "$d" || die "the postgres user cannot enter $d"
            done
        fi
        trap 'rc=$?; if ((rc != 0)); then log "start failed; stopping what started"; "$0" stop "$BASE" || true; fi' EXIT
        start_rabbitmq &
        rmq=$!
        start_postgres
        wait "$rmq" || die "RabbitMQ failed to start"
        trap - EXIT
        print_env
        ;;
    stop)
        [[ -f "$BASE/pg_bindir" ]] && PG_BINDIR="$(cat "$BASE/pg_bindir")"
        stop_rabbitmq &
        rmq=$!
        if [[ -d "$BASE/postgres" ]]; then
            for ((n = 1; n <= PG_NODES; n++)); do stop_pg_process "node$n"; done
            stop_pg_process monitor
        fi
        wait "$rmq" || true
        log "stopped the cluster in $BASE"
        ;;
    env)
        print_env
        ;;
    kill)
        node_arg "${1:-}" "${2:-}"
        if [[ "$1" == rabbitmq ]]; then
            "$HERE/rabbitmq.sh" kill "$(rmq_base "$2")"
        else
            pid="$(read_pid "$BASE/postgres/node$2.pid")"
            group_running "$pid" && kill -KILL -- "-$pid" 2>/dev/null
            wait_group_gone "$pid" 10 || true
        fi
        log "killed $1 node $2"
        ;;
    revive)
        node_arg "${1:-}" "${2:-}"
        PG_BINDIR="$(cat "$BASE/pg_bindir")"
        if [[ "$1" == rabbitmq ]]; then
            "$HERE/rabbitmq.sh" start "$(rmq_base "$2")" >/dev/null
        else
            start_pg "node$2" run --pgdata "$BASE/postgres/node$2"
            # a demoted primary that pg_rewind cannot bring back takes a base backup, which waits for the
            # primary's next checkpoint (minutes away): ask for it at once, until the node replays
            ((PG_NODES == 2)) && hurry_checkpoint "$((3 - $2))" "$2"
        fi
        log "revived $1 node $2"
        ;;
    state)
        PG_BINDIR="$(cat "$BASE/pg_bindir")"
        as_pg pg_autoctl show state --pgdata "$BASE/postgres/monitor" || true
        load_network
        for ((n = 1; n <= RMQ_NODES; n++)); do
            # shellcheck disable=SC1090
            name="$(. "$(rmq_base "$n")/env.sh" && echo "$RABBITMQ_NODENAME")"
            if "$HERE/rabbitmq.sh" ctl "$(rmq_base "$n")" cluster_status --formatter json >/dev/null 2>&1; then
                echo "rabbitmq node$n: $name running on $(node_address "$n"):$(rmq_port "$n")"
            else
                echo "rabbitmq node$n: $name not answering"
            fi
        done
        ;;
    cut | heal)
        node_arg rabbitmq "${1:-}"
        set_cable "$([[ "$cmd" == cut ]] && echo down || echo up)" "$1"
        log "$cmd: RabbitMQ node $1"
        ;;
    *)
        usage
        ;;
esac
