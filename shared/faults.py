"""Named crash points for fault tests.

``GRIDCASE_CRASH_AT=relay.after_confirm`` makes the process kill itself with SIGKILL when it
reaches that point, exactly as a power cut would; unset (always, in production) it does nothing.
"""
import os
import signal

_TARGET = os.environ.get("GRIDCASE_CRASH_AT", "")


def crash_point(name: str) -> None:
    if _TARGET and _TARGET == name:
        os.kill(os.getpid(), signal.SIGKILL)
