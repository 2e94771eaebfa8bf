"""Child processes of `audiomuse up` (the worker, extra web processes), kept running.

Each child runs in a process group of its own: a Ctrl-C in the terminal reaches `audiomuse up`
only, which then stops the children in order.  A child that exits while `up` runs is started
again after a pause that doubles with each quick failure (1 s up to 60 s; back to 1 s once a
child has run for 5 minutes), and every exit and restart is logged.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger("audiomuse")

FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 60.0
HEALTHY_AFTER_S = 300.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when `audiomuse up` dies, even by SIGKILL (Linux), so a
    crash leaves no worker behind (the embedded servers it leaves are adopted by the next start)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Supervised:
    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], *, first_pause_s: float = FIRST_PAUSE_S
    ) -> None:
        self.name, self.argv, self.env = name, list(argv), dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.first_pause_s = first_pause_s
        self.pause_s = first_pause_s
        self.restarts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.started_at = time.monotonic()

    async def watch(self, poll_s: float = 0.5) -> None:
        """Restart the child whenever it exits, until cancelled."""
        while True:
            await asyncio.sleep(poll_s)
            if self.process is None or self.process.poll() is None:
                continue
            code = self.process.returncode
            ran = time.monotonic() - self.started_at
            if ran >= HEALTHY_AFTER_S:
                self.pause_s = self.first_pause_s
            log.error(
                "%s exited with code %s after %.0f s; restarting in %.0f s",
                self.name,
                code,
                ran,
                self.pause_s,
            )
            await asyncio.sleep(self.pause_s)
            self.pause_s = min(MAX_PAUSE_S, self.pause_s * 2)
            self.restarts += 1
            self.start()
            log.info(
                "%s restarted (pid %s, restart %d)",
                self.name,
                self.process.pid if self.process else "?",
                self.restarts,
            )

    def stop(self, timeout_s: float = 60.0) -> None:
        child = self.process
        if child is None:
            return
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        self.process = None


async def watch_all(children: Sequence[Supervised]) -> None:
    await asyncio.gather(*(c.watch() for c in children))


def stop_all(children: Sequence[Supervised]) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        child.stop()
