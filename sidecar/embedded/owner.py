"""Who owns an embedded server: the process that started it, recorded in an owner file.

A server found running is shared while its owner lives (an `audiomuse web` beside a running
`audiomuse up`); when the owner is gone (killed, crashed), the process that finds the server
adopts it: it records itself as the owner and stops the server when it stops.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def write_owner(path: Path) -> None:
    """Record this process as the owner of an embedded server."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, path)


def owner_alive(path: Path) -> int | None:
    """The pid recorded in ``path`` when that process still runs, else None."""
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def adopt_if_orphaned(server: str, port: int, owner_file: Path) -> bool:
    """For a server found running on ``port``: True when its owner is gone and this process has
    adopted it (and must stop it), False when it is shared with its live owner."""
    owner = owner_alive(owner_file)
    if owner is not None:
        log.info(
            "embedded %s already running on port %s (started by process %s), reusing it", server, port, owner
        )
        return False
    log.warning(
        "embedded %s on port %s was left running by a process that is gone: adopting it (it stops "
        "when this process stops)",
        server,
        port,
    )
    write_owner(owner_file)
    return True
