"""When to try a notification again, and when to stop trying a receiver for a while.

**Retries** are tenacity's, over attempts the notifier makes from the database (a notification waits in
its row between attempts, so a restart loses no schedule): ``wait_exponential_jitter`` — ``initial`` ×
2^(attempt − 1) seconds plus up to ``initial`` seconds of random jitter, at most ``maximum`` — and
``stop_before_delay(window)``: no attempt is scheduled more than ``window`` (24 hours) after the
notification was written; a failure that is not ``retryable`` (a 4xx other than 408/429) stops at once.
A receiver's ``Retry-After`` makes the wait at least that long. With the defaults (10 s, at most an
hour) a receiver that stays down gets about 30 attempts in the 24 hours.

**Circuits** are pybreaker's, one per endpoint (``channels.endpoint``: scheme, host and port; every
e-mail shares the SMTP server's): after ``fail_max`` failures in a row the circuit opens and the
endpoint's notifications are put back, untried, until ``reset_timeout`` has passed; then one trial
decides (closed again on success). Only retryable failures count: a receiver that answers 404 is up.
So one dead receiver costs the notifier one thread's wait per ``reset_timeout``, never the others' time.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pybreaker
from tenacity import Future, RetryCallState, Retrying, retry_if_exception, stop_before_delay, wait_exponential_jitter

from services.escalation.notify.channels import DeliveryError

WINDOW = timedelta(hours=24)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, DeliveryError) and error.retryable


class RetryPolicy:
    """The retry schedule of one notification (see the module)."""

    def __init__(self, initial: float = 10.0, maximum: float = 3600.0, window: timedelta = WINDOW):
        self.retrying = Retrying(wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
                                 stop=stop_before_delay(window.total_seconds()), retry=retry_if_exception(_retryable))

    def next_attempt(self, attempts: int, created_at: datetime, now: datetime, error: BaseException) -> datetime | None:
        """When to try again after attempt number ``attempts`` failed with ``error`` at ``now`` (the
        notification written at ``created_at``), or None: give up (not retryable, or past the window)."""
        state = RetryCallState(self.retrying, fn=None, args=(), kwargs={})
        state.attempt_number = max(attempts, 1)
        state.start_time = 0.0
        state.outcome_timestamp = max((now - created_at).total_seconds(), 0.0)
        outcome = Future(state.attempt_number)
        outcome.set_exception(error)
        state.outcome = outcome
        if not self.retrying.retry(state):
            return None
        wait = self.retrying.wait(state)
        if isinstance(error, DeliveryError) and error.retry_after:
            wait = max(wait, min(error.retry_after, self.retrying.wait.max))
        state.upcoming_sleep = wait
        if self.retrying.stop(state):
            return None
        return now + timedelta(seconds=wait)


class Circuits:
    """One pybreaker circuit per endpoint, made on first use (thread-safe)."""

    def __init__(self, fail_max: int = 5, reset_timeout: float = 60.0):
        self.fail_max, self.reset_timeout = fail_max, reset_timeout
        self._circuits: dict[str, pybreaker.CircuitBreaker] = {}
        self._lock = threading.Lock()

    def __getitem__(self, endpoint: str) -> pybreaker.CircuitBreaker:
        with self._lock:
            if endpoint not in self._circuits:
                self._circuits[endpoint] = pybreaker.CircuitBreaker(
                    fail_max=self.fail_max, reset_timeout=self.reset_timeout, name=endpoint,
                    exclude=[lambda e: isinstance(e, DeliveryError) and not e.retryable],
                    throw_new_error_on_trip=False)
            return self._circuits[endpoint]

    def is_open(self, endpoint: str) -> bool:
        """Whether the endpoint's circuit is open and its reset time has not passed (a call would be
        refused untried)."""
        with self._lock:
            circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.current_state != pybreaker.STATE_OPEN:
            return False
        opened = circuit._state_storage.opened_at  # pybreaker keeps it there; it has no public accessor
        return opened is not None and (datetime.now(opened.tzinfo) - opened).total_seconds() < self.reset_timeout

    def call(self, endpoint: str, send) -> None:
        """``send()`` through the endpoint's circuit: ``CircuitOpen`` without calling it while the circuit
        is open; otherwise what ``send`` raises (a ``DeliveryError``; the failure that opens the circuit
        too)."""
        try:
            self[endpoint].call(send)
        except pybreaker.CircuitBreakerError:
            raise CircuitOpen(endpoint, self.reset_timeout) from None


class CircuitOpen(Exception):
    """The endpoint's circuit is open: its notifications wait untried, ``seconds`` at most."""

    def __init__(self, endpoint: str, seconds: float):
        super().__init__(f"circuit open for {endpoint}: retry in {seconds:.0f} s")
        self.endpoint, self.seconds = endpoint, seconds
