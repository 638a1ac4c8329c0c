"""Bounded waiting for tests that watch other processes (workers, servers), and starting them
as a terminal would."""

from __future__ import annotations

import signal
import subprocess
import time


def start_as_in_a_terminal(command: list[str], **kwargs) -> subprocess.Popen:
    """Start ``command`` in its own process group with Ctrl-C's default meaning: a test suite run
    in the background (nohup, ``&`` in a script) has SIGINT ignored, a child inherits that through
    exec, and a program started that way rightly ignores Ctrl-C. A handled signal (not an ignored
    one) is reset to the default in the child, so the parent handles it while starting it."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, start_new_session=True, **kwargs)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
