"""Notifications: subscriptions, the notifications outbox written with each step, and the notifier that
delivers it (webhook, WeCom and DingTalk group robots, e-mail) or keeps it for the bell (in-app).

- ``events``: which notification events a step makes, whom they address, which subscriptions hear them;
- ``tables``: the ``subscriptions`` and ``notifications`` tables (escalation's schema);
- ``outbox``: ``enqueue_steps`` (every published outcome) and ``enqueue`` (an event from elsewhere);
- ``subscriptions``: checking, storing and listing subscriptions, and who may manage them;
- ``channels``: what each channel sends, and how (signatures, DingTalk's signed URL, SMTP);
- ``delivery``: the retry schedule (tenacity) and the per-endpoint circuits (pybreaker);
- ``worker``: the notifier (``gridcase up`` runs it as a thread; ``gridcase worker notify`` alone);
- ``api``: ``/escalation/v1/subscriptions`` and ``/escalation/v1/notifications``.
"""
