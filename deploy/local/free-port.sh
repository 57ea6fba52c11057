#!/usr/bin/env bash
# Print a free TCP port on 127.0.0.1.
#
#   free-port.sh                 any free port (the kernel picks one)
#   free-port.sh --pair OFFSET   a port P in 10000..(65535-OFFSET) such that P and P+OFFSET are both free
#                                (RabbitMQ needs its node port and its distribution port, P+20000)
#
# The port is only checked, not held: another process may take it before the caller binds it. Callers
# that start a server re-check when it fails to bind.
set -euo pipefail

offset=""
case "${1:-}" in
    "") ;;
    --pair) offset="${2:?usage: free-port.sh [--pair OFFSET]}" ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: free-port.sh [--pair OFFSET]" >&2; exit 2 ;;
esac

exec python3 - "$offset" <<'PY'
import random
import socket
import sys


def free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


offset = sys.argv[1]
if not offset:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()
    sys.exit(0)

offset = int(offset)
high = 65535 - offset
if high < 10000:
    sys.exit(f"free-port.sh: offset {offset} too large")
rng = random.SystemRandom()
for _ in range(500):
    port = rng.randint(10000, high)
    if free(port) and free(port + offset):
        print(port)
        sys.exit(0)
sys.exit(f"free-port.sh: no free port pair with offset {offset}")
PY
