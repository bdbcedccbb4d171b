"""Stopping a long-running command cleanly: the first SIGINT/SIGTERM asks it to finish what it is doing, a second
one interrupts at once."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGTERM/SIGINT so that a loop ends at its next step (a producer between items, then flushes and saves
    its cursor; the compaction between runs). `on_stop` says on the terminal what happens next."""

    def __init__(self, on_stop: str = "flushing and saving the cursor"):
        self.stopping = False
        self.on_stop = on_stop
        self._previous: dict[int, Any] = {}

    def install(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.stopping:  # a second signal: the user means it
            raise KeyboardInterrupt
        log.warning("%s received: %s (again to interrupt at once)", signal.Signals(signum).name, self.on_stop)
        self.stopping = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def sleep(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait `seconds`, or less if a stop signal comes: sources wait through this between polls and
        reconnects so that SIGTERM never waits out a long backoff."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.stopping:
            sleep(min(left, 0.2))
