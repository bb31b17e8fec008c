"""Small pieces the benchmark's parts share: progress, topics, memory, percentiles, CPU per call."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from infra.kafka.cluster import KafkaCluster
from infra.stack import Stack
from services.runtime.kafka_access import KafkaAccess
from services.runtime.provisioning import ensure_topics

PARTITIONS = 6
"""As many partitions as the services' own topics get (``KAFKA_PARTITIONS`` default)."""

_START = time.monotonic()


def say(message: str) -> None:
    """A progress line on stderr, with the seconds since the bench started."""
    print(f"[bench {time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def cpu_per_call_us(call: Callable[[], object], iterations: int, repeats: int) -> float:
    """Median over ``repeats`` of this thread's CPU time per call, in µs (wall time would count waits)."""
    call()  # warm: key objects, caches
    samples = []
    for _ in range(repeats):
        started = time.thread_time()
        for _ in range(iterations):
            call()
        samples.append((time.thread_time() - started) / iterations * 1e6)
    return statistics.median(samples)


async def create_topics(access: KafkaAccess, names: Sequence[str], partitions: int = PARTITIONS) -> None:
    """Create ``names`` with ``partitions`` partitions each (no-op for those that exist)."""
    await ensure_topics(access, names, partitions=partitions, client_id="bench-setup")


def memory_mb(pid: int) -> tuple[float, float] | None:
    """``(rss, peak rss)`` of a process in MiB from ``/proc/<pid>/status`` (VmRSS, VmHWM).

    VmHWM is the kernel's high-water mark of the resident set over the process's life, so no
    sampling can miss a peak. None when the process is gone or there is no ``/proc``.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB → MiB
    if "VmRSS" not in fields:
        return None
    return fields["VmRSS"], fields.get("VmHWM", fields["VmRSS"])


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q ≤ 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is space-separated.
    return text.rsplit(")", 1)[1].split()


def _parents() -> dict[int, int]:
    """Every process's parent, from ``/proc``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    return parents


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started and that are alive now (a service's letter workers)."""
    return sorted(child for child, parent in _parents().items() if parent == pid)


def cpu_seconds(pid: int, *, tree: bool = True) -> float | None:
    """CPU time (user + system) of ``pid`` and every descendant alive now, plus the children it reaped.

    For Postgres that is the postmaster, its backends, and the backends that already exited.
    ``tree=False``: the process alone.
    """
    root = _stat(pid)
    if root is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    if not tree:
        return (int(root[11]) + int(root[12])) / tick
    parents = _parents()
    members, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in members:
                members.add(child)
                frontier.append(child)
    # After ")": state, ppid, …; utime and stime are fields 14 and 15 of stat, cutime and cstime 16, 17.
    total = int(root[13]) + int(root[14])
    for member in members:
        fields = _stat(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / tick


OWN = "load generator"
"""The name of the measuring process itself (the bench's load generator, the replayer)."""


def component_pids(stack: Stack, *, own: str = OWN) -> dict[str, int]:
    """The process of each part of ``stack`` (services, Kafka nodes, Postgres, mailbox) and our own."""
    pids = {name: s.process.pid for name, s in stack.services.items() if s.process is not None}
    nodes = (
        stack.kafka.nodes if isinstance(stack.kafka, KafkaCluster) else [stack.kafka] if stack.kafka else []
    )
    for n, node in enumerate(nodes, 1):
        if (pid := node.pid()) is not None:
            pids["kafka" if len(nodes) == 1 else f"kafka-{n}"] = pid
    if stack.postgres is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = stack.postgres.data_dir / "postmaster.pid"
            pids["postgres"] = int(postmaster.read_text().splitlines()[0])
    if stack.mailbox is not None and stack.mailbox.process is not None:
        pids["mailbox"] = stack.mailbox.process.pid
    pids[own] = os.getpid()
    return pids


def cpu_probe(stack: Stack, *, own: str = OWN) -> Callable[[], dict[str, float]]:
    """CPU seconds used so far by each part of ``stack`` (with the processes it started), and by us.

    The processes are looked up at every reading: the scale-out phase adds instances.
    """

    def probe() -> dict[str, float]:
        # Our own process alone: the services, Kafka and the mailbox are our children.
        pids = component_pids(stack, own=own)
        readings = {name: cpu_seconds(pid, tree=name != own) for name, pid in pids.items()}
        return {name: value for name, value in readings.items() if value is not None}

    return probe
