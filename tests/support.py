"""Shared helpers for tests: waits with deadlines that say what they waited for."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.harness import Cluster

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns a truthy value; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)
        last = probe()
    return last


def kubectl_json(cluster: Cluster, *args: str) -> Any:
    """Run ``kubectl ARGS -o json`` and parse the output."""
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)
