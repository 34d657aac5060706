"""Plain meters for the bounds on one call (`configs.media_security.CallLimits`): a token
bucket for key presses and a real-time check on caller audio. No I/O; the clock is given,
so they are tested without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter", "RealTimeMeter"]


class RateLimiter:
    """A token bucket: `burst` events at once, then `per_s` a second."""

    def __init__(self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.per_s, self.burst, self.clock = per_s, float(burst), clock
        self._tokens = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        """Take one event's token; False when the bucket is empty (the event is over the
        rate)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if self._tokens < 1.0 - 1e-9:  # (float sums: 0.1 s at 10/s is one token)
            return False
        self._tokens -= 1.0
        return True


class RealTimeMeter:
    """Whether a fork's caller audio arrives faster than real time.

    FreeSWITCH sends a live channel's audio as it happens, 20 ms a frame; a stall (on the
    network, or on this replica's event loop) delivers some of it late, in a burst, but
    never ahead of the wall clock. So the audio received may run ahead of the time that
    has passed by at most an allowance, `(factor - 1) * window_s` seconds (2.5 s for 1.5x
    over 5 s): a sender at 1.5x real time uses it up in 5 s, one at 10x in under 0.3 s,
    and a stall of up to 2.5 s is absorbed. Fixed memory, whatever the frames' size."""

    def __init__(self, sample_rate: int, factor: float = 1.5, window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.clock = sample_rate, clock
        self.allowance_s = (factor - 1.0) * window_s
        self._credit_s = self.allowance_s
        self._at: float | None = None

    def add(self, samples: int) -> bool:
        """Count `samples` arriving now; True once the audio is further ahead of real time
        than the allowance."""
        now = self.clock()
        if self._at is not None:
            self._credit_s = min(self.allowance_s, self._credit_s + (now - self._at))
        self._at = now
        self._credit_s -= samples / self.rate
        return self._credit_s < 0
