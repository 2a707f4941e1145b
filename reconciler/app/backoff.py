"""Backoff waits from tenacity's strategies, for loops that are not a tenacity-decorated call.

The apply loop requeues a batch and the watch loop schedules its next pass; both want the same
exponential waits tenacity computes, as plain numbers they can sleep on and tests can assert.
"""

from __future__ import annotations

from typing import Protocol

import tenacity


class WaitStrategy(Protocol):
    def __call__(self, retry_state: tenacity.RetryCallState) -> float: ...


def wait_seconds(strategy: WaitStrategy, *, attempt: int) -> float:
    """The wait `strategy` prescribes after failed attempt number `attempt` (1-based)."""
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return strategy(state)
