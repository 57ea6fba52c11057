"""An idle `gridcase up` costs almost nothing: relays and the scheduler wake on commits, consumers on
publishes (``shared.bus.MemoryTransport``), and each polls only seconds apart. The bar: under 3 %
of a core over 10 s.

Why seconds apart and not a tenth of one: on these virtual machines a thread that wakes after a second
or more of idling pays 15-35 ms of CPU for work that costs 0.3 ms when warm (a relay's empty outbox
read: ``time.thread_time()`` around ``Relay.run_once`` after 0, 0.1, 0.5 and 2 s sleeps gave 0.3, 2, 7
and 20 ms), so the number of wakes, not their work, sets the idle cost."""
from __future__ import annotations

import os
import time

from harness.processes import Processes

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat``, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def test_an_idle_embedded_system_uses_under_three_percent_of_a_core(tmp_path):
    processes = Processes(tmp_path)
    try:
        process = processes.gridcase("up", ["up", "--port", "0", "--data-dir", str(tmp_path)])
        base = processes.announced("up", r"gridcase is up at (http://\S+)", timeout=90).group(1)
        processes.wait_ready("up", f"{base}/readyz", timeout=90)
        time.sleep(10)  # start-up work (the city's import and its messages, migrations, first polls) is over
        used = []
        for _ in range(3):  # three 10-second windows: one stray burst (a checkpoint, a late message) is not idling
            before, started = cpu_seconds(process.pid), time.monotonic()
            time.sleep(10)
            used.append((cpu_seconds(process.pid) - before) / (time.monotonic() - started))
    finally:
        processes.stop_all()
    assert min(used) < 0.03, f"idle gridcase up used {', '.join(f'{u:.1%}' for u in used)} of a core"
