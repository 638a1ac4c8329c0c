"""Bounded waiting for tests that watch other processes (workers, servers)."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
