"""Whether an SSH worker is worth trying, and how patiently to reconnect to it.

A farm host that is down must not eat every batch the scheduler hands it, and must not be
hammered with connection attempts either. Two mechanisms, kept apart so each can be tested as a
value: a tenacity wait strategy (the exact backoff between reconnect attempts inside one
operation) and a small circuit breaker (after N consecutive infrastructure failures the host is
unhealthy for a cool-down; the first operation after it is the probe that closes or reopens it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tenacity import wait_exponential
from tenacity.wait import wait_base


@dataclass(frozen=True)
class Backoff:
    """Reconnect attempts within one operation: `attempts` tries, waits doubling from `initial`."""

    attempts: int = 4
    initial: float = 1.0
    maximum: float = 30.0

    def wait_strategy(self) -> wait_base:
        """The tenacity wait between attempts: initial, 2*initial, 4*initial, ... up to maximum."""
        return wait_exponential(multiplier=self.initial, min=0, max=self.maximum)


def utc_now() -> datetime:
    return datetime.now(UTC)


class HostHealth:
    """Counts consecutive infrastructure failures of one host and says when it may be tried."""

    def __init__(
        self,
        *,
        unhealthy_after: int,
        cool_down: timedelta,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._unhealthy_after = unhealthy_after
        self._cool_down = cool_down
        self._now = now
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self._unhealthy_until: datetime | None = None

    @property
    def unhealthy_until(self) -> datetime | None:
        """When the cool-down ends; None while the host is healthy."""
        if self._unhealthy_until is not None and self._now() >= self._unhealthy_until:
            return None
        return self._unhealthy_until

    @property
    def healthy(self) -> bool:
        return self.unhealthy_until is None

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.last_failure = None
        self._unhealthy_until = None

    def record_failure(self, reason: str) -> None:
        self.consecutive_failures += 1
        self.last_failure = reason
        if self.consecutive_failures >= self._unhealthy_after:
            # The probe after a cool-down failed too: the host stays out for another cool-down.
            self._unhealthy_until = self._now() + self._cool_down
