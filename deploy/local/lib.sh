# shellcheck shell=bash
# Helpers shared by deploy/local/*.sh (sourced, not run). Processes are only ever found by the pids we
# recorded, never by name; a zombie (exited, not yet reaped by its parent) counts as gone.

# read_pid FILE: the pid on the file's first line, or nothing
read_pid() {
    local f="$1" pid=""
    if [[ -s "$f" ]]; then read -r pid <"$f" || true; fi
    if [[ "$pid" =~ ^[0-9]+$ ]]; then echo "$pid"; fi
}

# running PID: the process exists and is not a zombie
running() {
    local pid="$1" stat
    [[ -n "$pid" ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"            # fields after "(comm) "; the first one is the state
    [[ -n "$stat" && "${stat:0:1}" != Z ]]
}

# alive PID WORD: running, and its command line mentions WORD, so a recycled pid that now belongs to
# something else is never signalled
alive() {
    local pid="$1" word="$2"
    running "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$word"
}

# group_running PGID: some non-zombie process is in that process group
group_running() {
    local pgid="$1"
    [[ -n "$pgid" ]] || return 1
    ps -e -o pgid= -o stat= | awk -v g="$pgid" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# wait_gone PID SECONDS: true once the process is gone (or a zombie)
wait_gone() {
    local pid="$1" deadline=$((SECONDS + $2))
    while running "$pid"; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

# wait_group_gone PGID SECONDS
wait_group_gone() {
    local pgid="$1" deadline=$((SECONDS + $2))
    while group_running "$pgid"; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

# port_free PORT: nothing listens on 127.0.0.1:PORT. SO_REUSEADDR, as servers bind: connections
# lingering in TIME_WAIT after a stop do not count.
port_free() {
    python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}
