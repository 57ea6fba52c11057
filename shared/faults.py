"""Named crash points for fault tests.

``GRIDCASE_CRASH_AT=relay.after_confirm`` (``Settings.crash_at``, armed by the bootstrap) makes the
process kill itself with SIGKILL when it reaches that point, exactly as a power cut would; unset
(always, in production) it does nothing.
"""
import os
import signal

_target = ""


def arm(name: str) -> None:
    global _target
    _target = name or ""


def crash_point(name: str) -> None:
    if _target and _target == name:
        os.kill(os.getpid(), signal.SIGKILL)
