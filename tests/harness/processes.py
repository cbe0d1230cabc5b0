"""Local processes of the harness: ports, liveness, waits, costs, errors and progress."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class ClusterError(RuntimeError):
    """The local cluster (or a process of it) could not be started, reached or stopped."""


def log(message: str) -> None:
    """One line of progress on stderr."""
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has already exited)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def find_processes(match: Callable[[list[bytes]], bool]) -> list[int]:
    """PIDs of this machine's processes whose argv (from /proc) ``match`` accepts."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and match(argv):
                found.append(int(proc.name))
    return found


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``ready`` every 0.5 s; raise TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


@dataclass(frozen=True)
class ProcessFigures:
    """What a process has cost so far: peak resident memory and CPU time (from /proc), and
    its resident memory now."""

    peak_rss_mib: float
    cpu_seconds: float
    rss_mib: float = 0.0

    @classmethod
    def of(cls, pid: int) -> ProcessFigures | None:
        """The figures of a live process; None once it is gone."""
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        except OSError:
            return None
        match = re.search(r"VmHWM:\s+(\d+)", status)
        now = re.search(r"VmRSS:\s+(\d+)", status)
        fields = stat.rsplit(")", 1)[-1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return cls(
            peak_rss_mib=int(match.group(1)) / 1024 if match else 0.0,
            cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
            rss_mib=int(now.group(1)) / 1024 if now else 0.0,
        )


def terminate(pid: int, grace: float = 15) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it is still running after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_running(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 20) -> None:
    """SIGTERM a child process, then SIGKILL it if it has not exited after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def answers_ok(url: str, timeout: float = 2) -> bool:
    """Whether ``url`` answers 200 now (a readiness probe); False while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
