"""The columns of ``chat_tracks``, the one relation the chat may query (migration 0006).

Every tag score is a real column: ``mood_<label>`` for the 50 MSD tags (upstream's "moods"),
``mtt_<label>`` for the 50 MagnaTagATune tags, and the six other features by name.  Labels
become identifiers by lower-casing and turning every run of other characters into ``_``.
"""

from __future__ import annotations

import re
from typing import Final

#: copies of sidecar/ml/features/moods.py's lists (importing it loads numpy and scipy into the web
#: process); tests/test_chat_db.py checks they are equal
MSD_LABELS: Final = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)  # fmt: skip
MTT_LABELS: Final = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird",
    "country", "metal", "female voice", "choral",
)  # fmt: skip
OTHER_FEATURES: Final = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")

VIEW: Final = "chat_tracks"


def column_name(prefix: str, label: str) -> str:
    return prefix + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


#: column -> tag label, for the 50 MSD tags and the 50 MagnaTagATune tags
MOOD_COLUMNS: Final = {column_name("mood_", label): label for label in MSD_LABELS}
MTT_COLUMNS: Final = {column_name("mtt_", label): label for label in MTT_LABELS}
FEATURE_COLUMNS: Final = tuple(OTHER_FEATURES)

#: column -> (SQL type, meaning) of the metadata and analysis columns
BASE_COLUMNS: Final = {
    "item_id": ("text", "the track's id (always select it)"),
    "title": ("text", "song title"),
    "artist": ("text", "track artist"),
    "album": ("text", "album name"),
    "album_artist": ("text", "album artist"),
    "year": ("integer", "release year, may be NULL"),
    "genres": ("text", "genre tags of the file, comma separated, may be empty"),
    "duration_s": ("real", "length in seconds"),
    "tempo": ("real", "beats per minute, 40-200"),
    "key": ("text", "musical key: C, C#, D, ... B"),
    "scale": ("text", "'major' or 'minor'"),
    "energy": ("real", "loudness energy normalised to 0-1"),
}

ALL_COLUMNS: Final = (*BASE_COLUMNS, *MOOD_COLUMNS, *MTT_COLUMNS, *FEATURE_COLUMNS)
