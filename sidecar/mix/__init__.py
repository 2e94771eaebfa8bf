"""Mix engine: pure functions that turn nearest-neighbour candidates into mixes and paths.

See :mod:`sidecar.mix.engine` for the rules and algorithms and
:mod:`sidecar.mix.normalize` for the title/artist normalisation used to spot duplicates.
The package exports the engine's public names (its ``__all__``) and the normalisers.
"""

from sidecar.mix import engine
from sidecar.mix.engine import *  # noqa: F403 -- the engine's __all__, listed once, there
from sidecar.mix.normalize import normalize_album, normalize_artist, normalize_title, track_key

__all__ = [*engine.__all__, "normalize_album", "normalize_artist", "normalize_title", "track_key"]
