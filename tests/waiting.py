"""Waiting for other threads and processes: poll a condition until a deadline, never sleep and hope."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 30, what: str = "the condition", *, interval: float = 0.05
) -> T:
    """Returns the predicate's first truthy value; raises TimeoutError naming `what` past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come true within {timeout}s")
        time.sleep(interval)
