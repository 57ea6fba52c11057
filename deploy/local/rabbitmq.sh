#!/usr/bin/env bash
# A throwaway single-node RabbitMQ on loopback, everything under one base directory (see
# shared/docs/RUNBOOK.md). No root service, no systemd, no Docker: Debian's rabbitmq-server package only.
#
#   rabbitmq.sh start   BASE [PORT]  start epmd + the node; prints amqp://guest:guest@127.0.0.1:PORT/%2F
#   rabbitmq.sh stop    BASE         stop the node (TERM, then KILL after a timeout) and its epmd, by pid
#   rabbitmq.sh restart BASE         stop the node only and start it again; data (durable queues) kept
#   rabbitmq.sh kill    BASE         SIGKILL the node (a crash; epmd and data stay); `start BASE` revives it
#   rabbitmq.sh url     BASE         print the AMQP URL
#   rabbitmq.sh env     BASE         print the environment (`eval "$(rabbitmq.sh env BASE)"; rabbitmqctl status`;
#                                    only while it runs: with its epmd down, rabbitmqctl starts a stray epmd)
#   rabbitmq.sh ctl     BASE ARGS... run rabbitmqctl against the node, e.g. `ctl BASE list_queues`
#
# PORT is chosen free if omitted (its distribution port, PORT+20000, must be free too); a second `start`
# of the same BASE reuses the port and data of the first. The node has its own epmd on its own free port,
# so it never meets another RabbitMQ on the machine. Only the URL goes to stdout, everything else to
# stderr. Processes are only ever stopped by the pids recorded under BASE, never by name.
#
# Env: RABBITMQ_BIN_DIR (default /usr/lib/rabbitmq/bin), RABBITMQ_STOP_TIMEOUT (s, default 30),
#      RABBITMQ_START_TIMEOUT (s, default 110), RABBITMQ_ALL_PLUGINS=1 (first start only: keep every
#      plugin on the code path, slower; needed to enable e.g. rabbitmq_management by hand).
#      For a node of a cluster (deploy/local/cluster.sh; first start only): RABBITMQ_EPMD_PORT (an epmd the
#      caller runs and stops, shared by the nodes), RABBITMQ_COOKIE (the cluster's Erlang cookie),
#      RABBITMQ_CLUSTER_NODES (the node names, space-separated, for classic-config peer discovery),
#      RABBITMQ_NET_TICKTIME (s: how soon a silent peer node counts as down; Erlang's default is 60).
#      A node in a network namespace of its own (cluster.sh, to cut it off the network): RABBITMQ_NETNS (the
#      namespace, made by the caller) and RABBITMQ_ADDRESS (the node's address there). The node is then
#      named rabbit-PORT@ADDRESS (long names), listens on ADDRESS and runs its own epmd in the namespace
#      on RABBITMQ_EPMD_PORT; every command that talks to it (rabbitmqctl) runs in the namespace too.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RMQ_BIN="${RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}"
STOP_TIMEOUT="${RABBITMQ_STOP_TIMEOUT:-30}"
START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-110}"
DIST_OFFSET=20000

log() { echo "rabbitmq.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

# --- environment --------------------------------------------------------------------------------------

load_env() {
    [[ -f "$BASE/env.sh" ]] || die "$BASE is not a RabbitMQ base (no env.sh); run: rabbitmq.sh start $BASE"
    # shellcheck disable=SC1091
    . "$BASE/env.sh"
    IN_NS=()                                    # the prefix that runs a command beside the node
    if [[ -n "${GRIDCASE_NETNS:-}" ]]; then
        IN_NS=(ip netns exec "$GRIDCASE_NETNS")
    fi
}

# port_free PORT, in the node's network namespace
port_free_here() {
    if ((${#IN_NS[@]})); then "${IN_NS[@]}" bash -c ". '$HERE/lib.sh'; port_free $1"; else port_free "$1"; fi
}

# First start of a BASE: config files, cookie, ports, env.sh.
init_base() {
    local port="$1" epmd_port
    [[ -x "$RMQ_BIN/rabbitmq-server" ]] || die "$RMQ_BIN/rabbitmq-server not found (apt-get install rabbitmq-server)"
    command -v epmd >/dev/null || die "epmd not found (it comes with erlang-base)"
    if [[ -z "$port" ]]; then
        port="$("$HERE/free-port.sh" --pair "$DIST_OFFSET")"
    fi
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1024 || port + DIST_OFFSET > 65535)); then
        die "PORT must be 1024..$((65535 - DIST_OFFSET)) (its distribution port is PORT+$DIST_OFFSET)"
    fi
    epmd_port="${RABBITMQ_EPMD_PORT:-$("$HERE/free-port.sh")}"
    local address="${RABBITMQ_ADDRESS:-127.0.0.1}" netns="${RABBITMQ_NETNS:-}" external_epmd="" name_host=localhost
    local erl_args="-kernel inet_dist_use_interface {${address//./,}}" ctl_args=""
    if [[ -n "$netns" ]]; then
        name_host="$address"
    elif [[ -n "${RABBITMQ_EPMD_PORT:-}" ]]; then
        external_epmd=1
    fi
    if [[ -n "${RABBITMQ_NET_TICKTIME:-}" ]]; then
        erl_args+=" -kernel net_ticktime $RABBITMQ_NET_TICKTIME"
        ctl_args="-kernel net_ticktime $RABBITMQ_NET_TICKTIME"
    fi

    mkdir -p "$BASE/mnesia" "$BASE/log"
    chmod 700 "$BASE"
    if [[ -n "${RABBITMQ_COOKIE:-}" ]]; then
        rm -f "$BASE/.erlang.cookie"
        (umask 077 && printf '%s' "$RABBITMQ_COOKIE" >"$BASE/.erlang.cookie")
    elif [[ ! -s "$BASE/.erlang.cookie" ]]; then
        (umask 077 && head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$BASE/.erlang.cookie")
    fi
    chmod 400 "$BASE/.erlang.cookie"
    : >"$BASE/rabbitmq-env.conf"            # empty: the system-wide /etc/rabbitmq/rabbitmq-env.conf is ignored
    echo '[].' >"$BASE/enabled_plugins"
    cat >"$BASE/rabbitmq.conf" <<EOF
listeners.tcp.default = $address:$port
loopback_users.guest = $([[ "$address" == 127.* ]] && echo true || echo false)
log.console = false
log.file.level = info
# small CI disks: only block publishers when the disk is really full
disk_free_limit.absolute = 50MB
EOF
    if [[ -n "${RABBITMQ_CLUSTER_NODES:-}" ]]; then
        local i=0 n
        {
            echo "# a node of a cluster: classic-config peer discovery (a blank node joins the first listed node"
            echo "# that answers); the minority side of a partition pauses instead of diverging"
            echo "cluster_formation.peer_discovery_backend = classic_config"
            for n in $RABBITMQ_CLUSTER_NODES; do
                i=$((i + 1))
                echo "cluster_formation.classic_config.nodes.$i = $n"
            done
            echo "cluster_formation.discovery_retry_limit = 3"
            echo "cluster_formation.discovery_retry_interval = 300"
            echo "cluster_partition_handling = pause_minority"
        } >>"$BASE/rabbitmq.conf"
    fi
    local scripts_dir_line=""
    if [[ "${RABBITMQ_ALL_PLUGINS:-0}" != 1 ]] && make_lean_home; then
        scripts_dir_line="export RABBITMQ_SCRIPTS_DIR='$BASE/rabbitmq-home/sbin'"
    fi
    cat >"$BASE/env.sh" <<EOF
# generated by deploy/local/rabbitmq.sh; source it to talk to this node with rabbitmqctl
export GRIDCASE_RABBITMQ_PORT=$port
export HOME='$BASE'
export RABBITMQ_NODENAME='rabbit-$port@$name_host'
export RABBITMQ_USE_LONGNAME=$([[ -n "$netns" ]] && echo true || echo false)
export GRIDCASE_EXTERNAL_EPMD='$external_epmd'
export GRIDCASE_NETNS='$netns'
export RABBITMQ_NODE_IP_ADDRESS=$address
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_DIST_PORT=$((port + DIST_OFFSET))
export ERL_EPMD_ADDRESS=$address
export ERL_EPMD_PORT=$epmd_port
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='$erl_args'
export RABBITMQ_CTL_ERL_ARGS='$ctl_args'
export RABBITMQ_MNESIA_BASE='$BASE/mnesia'
export RABBITMQ_LOG_BASE='$BASE/log'
export RABBITMQ_PID_FILE='$BASE/rabbitmq.pid'
export RABBITMQ_CONFIG_FILE='$BASE/rabbitmq'
export RABBITMQ_ADVANCED_CONFIG_FILE='$BASE/advanced.config'
export RABBITMQ_ENABLED_PLUGINS_FILE='$BASE/enabled_plugins'
export RABBITMQ_CONF_ENV_FILE='$BASE/rabbitmq-env.conf'
export PATH='$RMQ_BIN':"\$PATH"
$scripts_dir_line
EOF
}

# Start-up speed: Debian's package puts ~70 Erlang applications (every plugin) on the node's code path,
# and on a slow file system (gVisor here) the node spends half its boot searching them for modules. A
# private RABBITMQ_HOME under BASE whose plugins directory links only the applications `rabbit` needs
# (their closure from the .app files) halves the start (about 3 s instead of 6-7 s measured here).
# RABBITMQ_ALL_PLUGINS=1 keeps the package's home (needed to enable plugins such as management).
make_lean_home() {
    local real_sbin real_home apps a
    real_sbin="$(dirname "$(readlink -f "$RMQ_BIN/rabbitmq-server")")"
    real_home="$(dirname "$real_sbin")"
    [[ -d "$real_home/plugins" && -d "$real_home/escript" ]] || return 1
    apps="$(python3 - "$real_home/plugins" <<'PY'
import os, re, sys
pdir = sys.argv[1]
apps = {}
for d in os.listdir(pdir):
    m = re.match(r"(.+?)-[0-9][^-]*$", d)
    if m and os.path.isfile(os.path.join(pdir, d, "ebin", m.group(1) + ".app")):
        apps[m.group(1)] = d
need, todo = set(), ["rabbit"]
while todo:
    a = todo.pop()
    if a in need or a not in apps:
        continue  # OTP applications (kernel, ssl, ...) are not in the plugins directory
    need.add(a)
    with open(os.path.join(pdir, apps[a], "ebin", a + ".app")) as f:
        text = f.read()
    for key in ("applications", "included_applications", "optional_applications"):
        m = re.search(r"\{%s,\s*\[([^\]]*)\]" % key, text)
        if m:
            todo += [x.strip() for x in m.group(1).split(",") if x.strip()]
if "rabbit" in need and "rabbitmq_prelaunch" in need:
    print("\n".join(sorted(apps[a] for a in need)))
PY
)" || return 1
    [[ -n "$apps" ]] || return 1
    rm -rf "$BASE/rabbitmq-home"
    mkdir -p "$BASE/rabbitmq-home/plugins"
    ln -s "$real_sbin" "$BASE/rabbitmq-home/sbin"
    ln -s "$real_home/escript" "$BASE/rabbitmq-home/escript"
    while read -r a; do
        ln -s "$real_home/plugins/$a" "$BASE/rabbitmq-home/plugins/$a"
    done <<<"$apps"
}

# --- epmd ---------------------------------------------------------------------------------------------

EPMD_STARTED=0

epmd_answers() { "${IN_NS[@]}" epmd -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1; }

start_epmd() {
    local pid
    if [[ -n "${GRIDCASE_EXTERNAL_EPMD:-}" ]]; then   # a cluster's: its owner starts and stops it
        epmd_answers || die "the cluster's epmd on port $ERL_EPMD_PORT does not answer"
        return 0
    fi
    pid="$(read_pid "$BASE/epmd.pid")"
    alive "$pid" epmd && return 0
    port_free_here "$ERL_EPMD_PORT" || die "epmd port $ERL_EPMD_PORT is taken; remove $BASE/env.sh to pick new ports"
    "${IN_NS[@]}" setsid epmd -address "$ERL_EPMD_ADDRESS" -port "$ERL_EPMD_PORT" </dev/null >>"$BASE/log/epmd.log" 2>&1 &
    pid=$!
    echo "$pid" >"$BASE/epmd.pid"
    EPMD_STARTED=1
    for _ in $(seq 100); do
        epmd_answers && return 0
        running "$pid" || break
        sleep 0.05
    done
    stop_epmd
    die "epmd did not come up on $ERL_EPMD_ADDRESS:$ERL_EPMD_PORT (see $BASE/log/epmd.log)"
}

stop_epmd() {
    local pid
    [[ -z "${GRIDCASE_EXTERNAL_EPMD:-}" ]] || return 0
    pid="$(read_pid "$BASE/epmd.pid")"
    if alive "$pid" epmd; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || log "warning: epmd $pid did not exit"
    fi
    rm -f "$BASE/epmd.pid"
}

# --- node ---------------------------------------------------------------------------------------------
# The node runs in a session of its own (setsid): its process group id is the pid of the
# rabbitmq-server wrapper shell (recorded in node-session.pid), which is the parent of the Erlang VM
# (pid in RABBITMQ_PID_FILE, written by the node); erl_child_setup and inet_gethost belong to it too.

node_pid() { read_pid "$RABBITMQ_PID_FILE"; }
session_id() { read_pid "$BASE/node-session.pid"; }

node_running() { alive "$(node_pid)" beam || group_running "$(session_id)"; }

start_node() {
    node_running && die "node $RABBITMQ_NODENAME already running (pid $(node_pid)); use restart"
    port_free_here "$RABBITMQ_NODE_PORT" || die "port $RABBITMQ_NODE_PORT is taken"
    port_free_here "$RABBITMQ_DIST_PORT" || die "distribution port $RABBITMQ_DIST_PORT is taken"
    rm -f "$RABBITMQ_PID_FILE"
    local t0=$SECONDS sid waiter rc=0
    # setsid: nothing the node spawns outlives a stop, and the caller's Ctrl-C does not reach it
    (cd "$BASE" && exec "${IN_NS[@]}" setsid rabbitmq-server </dev/null >>"$BASE/log/server.out" 2>&1) &
    sid=$!
    echo "$sid" >"$BASE/node-session.pid"
    log "starting node $RABBITMQ_NODENAME on $RABBITMQ_NODE_IP_ADDRESS:$RABBITMQ_NODE_PORT (logs in $BASE/log)"

    # rabbitmqctl wait returns once the node has booted; meanwhile watch for the node dying early
    "${IN_NS[@]}" rabbitmqctl wait --timeout "$START_TIMEOUT" "$RABBITMQ_PID_FILE" >>"$BASE/log/wait.out" 2>&1 &
    waiter=$!
    while running "$waiter"; do
        if ! running "$sid"; then               # the wrapper lives exactly as long as the node
            kill -TERM "$waiter" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$waiter" || rc=$?
    if ((rc != 0)) || ! alive "$(node_pid)" beam; then
        log "node failed to start (rabbitmqctl wait exit $rc); last lines of the logs:"
        tail -n 30 "$BASE/log/server.out" "$BASE/log/wait.out" "$BASE/log/$RABBITMQ_NODENAME.log" >&2 2>/dev/null || true
        stop_node
        return 1
    fi
    log "node up in $((SECONDS - t0)) s (pid $(node_pid))"
}

stop_node() {
    local pid sid
    pid="$(node_pid)"
    sid="$(session_id)"
    if alive "$pid" beam; then
        kill -TERM "$pid" 2>/dev/null || true     # the Erlang VM shuts RabbitMQ down cleanly on SIGTERM
        if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
            log "node $pid still running after ${STOP_TIMEOUT}s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || true
        fi
    fi
    # whatever is left of the node's process group (the wrapper, erl_child_setup, a node that died
    # before writing its pid file): TERM, then KILL
    if group_running "$sid"; then
        kill -TERM -- "-$sid" 2>/dev/null || true
        wait_group_gone "$sid" 10 || kill -KILL -- "-$sid" 2>/dev/null || true
        wait_group_gone "$sid" 5 || log "warning: processes of group $sid are still running"
    fi
    rm -f "$RABBITMQ_PID_FILE" "$BASE/node-session.pid"
}

# A crash: SIGKILL to the whole group, nothing shut down cleanly. epmd and the data stay.
kill_node() {
    local pid sid
    pid="$(node_pid)"
    sid="$(session_id)"
    if group_running "$sid"; then
        kill -KILL -- "-$sid" 2>/dev/null || true
    elif alive "$pid" beam; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [[ -z "$pid" ]] || wait_gone "$pid" 5 || true
    [[ -z "$sid" ]] || wait_group_gone "$sid" 5 || true
    rm -f "$RABBITMQ_PID_FILE" "$BASE/node-session.pid"
}

# vhost "/" spelled %2F: kombu reads both "//" and "/%2F" as "/", but pika reads "//" as the empty vhost.
url() { echo "amqp://guest:guest@${RABBITMQ_NODE_IP_ADDRESS}:${RABBITMQ_NODE_PORT}/%2F"; }

# --- main ---------------------------------------------------------------------------------------------

cmd="${1:-}"
[[ -n "$cmd" && -n "${2:-}" ]] || usage
[[ "$cmd" == start ]] && mkdir -p "$2"
[[ -d "$2" ]] || die "no such directory: $2"
BASE="$(cd "$2" && pwd)"
shift 2

case "$cmd" in
    start)
        port="${1:-}"
        if [[ -f "$BASE/env.sh" ]]; then
            load_env
            [[ -z "$port" || "$port" == "$RABBITMQ_NODE_PORT" ]] \
                || die "$BASE was set up for port $RABBITMQ_NODE_PORT, not $port"
        else
            init_base "$port"
            load_env
        fi
        start_epmd
        if ! start_node; then
            ((EPMD_STARTED)) && stop_epmd
            exit 1
        fi
        url
        ;;
    stop)
        [[ -f "$BASE/env.sh" ]] || { log "nothing to stop in $BASE"; exit 0; }
        load_env
        stop_node
        stop_epmd
        log "stopped $RABBITMQ_NODENAME"
        ;;
    restart)
        load_env
        stop_node
        start_epmd
        start_node
        url
        ;;
    kill)
        load_env
        kill_node
        ;;
    url)
        load_env
        url
        ;;
    env)
        cat "$BASE/env.sh" 2>/dev/null || die "$BASE is not a RabbitMQ base"
        ;;
    ctl)
        load_env
        # With its epmd down, rabbitmqctl would start an epmd daemon of its own on our port, which no
        # pid file knows about: refuse instead.
        if [[ -n "${GRIDCASE_EXTERNAL_EPMD:-}" ]]; then
            epmd_answers || die "the cluster's epmd does not answer"
        else
            alive "$(read_pid "$BASE/epmd.pid")" epmd || die "not running (start it with: rabbitmq.sh start $BASE)"
        fi
        exec "${IN_NS[@]}" rabbitmqctl "$@"
        ;;
    *)
        usage
        ;;
esac
