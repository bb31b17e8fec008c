"""``interrupt_on_signals``: a long run (bench, replay-year) stopped by a signal cleans up after itself.

Started in the background from a script, a process inherits SIGINT ignored; SIGTERM is what a
supervisor sends. Either way the run's ``finally`` (which stops Kafka, Postgres and the
services) must run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import asyncio, sys
from pathlib import Path
from infra.stack import interrupt_on_signals

async def run(marker: Path) -> None:
    try:
        marker.write_text("started")
        await asyncio.sleep(60)
    finally:
        marker.write_text("stopped cleanly")

interrupt_on_signals()
try:
    asyncio.run(run(Path(sys.argv[1])))
except KeyboardInterrupt:
    sys.exit(130)
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` in a non-interactive shell


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_runs_the_finally_blocks(tmp_path: Path, sig: signal.Signals) -> None:
    marker = tmp_path / "marker"
    process = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(marker)], cwd=REPO, preexec_fn=_ignore_sigint
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "started"
        process.send_signal(sig)
        assert process.wait(timeout=30) == 130
    finally:
        process.kill()
    assert marker.read_text() == "stopped cleanly"
