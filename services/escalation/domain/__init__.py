"""Escalation's domain: the four-level closed loop (四级闭环) in plain Python, no framework.

Read in this order:

- ``cases.py``       a case's state (``Case``), ``open_case``, the one-owner-per-level rule
- ``deadlines.py``   the frozen time policy, ``deadline()`` and ``is_late()`` (the only time rules)
- ``actions.py``     the action table: every staff action by name, and ``perform()``
- ``loop.py``        acknowledge, resolve, verify, reopen
- ``ownership.py``   every change of owner (escalate, return, transfer, re-route): one rule, one table
- ``holds.py``       extensions (延期) and suspension (挂账)
- ``timers.py``      what happens without a person: deadlines passing, owners re-routed
- ``permissions.py`` who may act (role, level, area); ``errors.py`` refusals and their HTTP status
- ``timeline.py``    ``Step``, ``Event`` and the ``Outcome`` every change returns
"""
