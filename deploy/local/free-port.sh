#!/usr/bin/env bash
# Print a free TCP port on 127.0.0.1.
#
#   free-port.sh                 a free port P
#   free-port.sh --pair OFFSET   a port P such that P and P+OFFSET are both free
#                                (RabbitMQ needs its node port and its distribution port, P+20000)
#
# Ports are drawn at random from 10000 up to the start of the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range, usually 32768), so an outgoing connection never holds the
# port of a server that is restarting. The port is only checked, not held: the scripts that start a
# server check again right before it binds.
set -euo pipefail

offset=0
case "${1:-}" in
    "") ;;
    --pair) offset="${2:?usage: free-port.sh [--pair OFFSET]}" ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: free-port.sh [--pair OFFSET]" >&2; exit 2 ;;
esac

exec python3 - "$offset" <<'PY'
import random
import socket
import sys

offset = int(sys.argv[1])


def free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    ephemeral_low = 32768

low, high = 10000, min(ephemeral_low, 65536) - 1 - offset
if high - low < 200:                      # no room below the ephemeral range: use any port
    high = 65535 - offset
if high < low:
    sys.exit(f"free-port.sh: offset {offset} too large")

rng = random.SystemRandom()
for _ in range(1000):
    port = rng.randint(low, high)
    if free(port) and (offset == 0 or free(port + offset)):
        print(port)
        sys.exit(0)
sys.exit("free-port.sh: no free port found")
PY
