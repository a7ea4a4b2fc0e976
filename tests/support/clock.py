"""A clock in the test's hands: epoch milliseconds that move only when the test moves them."""

from __future__ import annotations


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now
