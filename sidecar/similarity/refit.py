"""When the similarity space's statistics are fitted again (sidecar/db/space.py does the work).

The statistics standardise every dimension over the library, so they follow it as it grows:
they are fitted again when the number of analysed tracks (or of those with an MTT embedding)
moved by more than a share of the number they were fitted on -- ``DURING_RUN`` after each album of an analysis run (so the first
albums of a new library are soon searchable and a growing library refits geometrically, about
five rebuilds of every vector in all), ``AT_REST`` at the end of a run and when a worker starts
(after an upgrade that added the space, its first fit).  Otherwise only the tracks without a
vector are placed, with the statistics in force.
"""

from __future__ import annotations

import logging

import asyncpg

from sidecar.db import space as space_db

log = logging.getLogger(__name__)

DURING_RUN = 0.25
AT_REST = 0.02


def needs_refit(state: space_db.SpaceState, tolerance: float) -> bool:
    """No statistics yet, or the analysed tracks -- or those of them with an MTT embedding (they
    grow while a library analysed before it was stored is analysed again) -- moved by more than
    ``tolerance`` of the number the statistics were fitted on."""
    if state.fitted_on is None or state.mtt_fitted_on is None:
        return True
    return _moved(state.tracks, state.fitted_on, tolerance) or _moved(
        state.mtt_tracks, state.mtt_fitted_on, tolerance
    )


def _moved(now: int, then: int, tolerance: float) -> bool:
    return abs(now - then) > tolerance * max(then, 1)


async def keep_fitted(db: asyncpg.Pool, tolerance: float) -> str | None:
    """Refit or place what needs it; a line for the task log when something was done."""
    done = await space_db.maintain(db, lambda state: needs_refit(state, tolerance))
    if done is None:
        return None
    what, tracks = done
    line = (
        f"similarity space fitted on {tracks} analysed tracks"
        if what == "fitted"
        else f"{tracks} tracks placed in the similarity space"
    )
    log.info(line)
    return line
