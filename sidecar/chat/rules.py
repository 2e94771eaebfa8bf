"""A plain-language request understood without any LLM, as a query on the chat view.

Words map to score columns (with synonyms: "calm" is the relaxed feature and the chill tags,
"running" is energetic and fast), tempo and energy words to ranges, decades and years to the
year (or the era tags when the year is unknown), "by X" to an artist match, "like X" to the tracks
of a sonic mix around artist or song X (resolved by :mod:`sidecar.chat.sounds_like`).  The
query ranks tracks by the sum of the matched scores and of how far into their ranges the tempo
and energy lie (``fast``: the faster the better), keeps at most ``per_artist`` songs per
artist, and goes through the same validator as an LLM's answer.  :attr:`Understanding.summary`
says how the request was understood.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.chat.columns import MOOD_COLUMNS, MTT_COLUMNS, VIEW

#: phrase -> score columns it asks for (longest phrases are matched first)
_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("happy", "mood_happy"),
    "joyful": ("happy", "mood_happy"),
    "cheerful": ("happy", "mood_happy"),
    "feel good": ("happy", "mood_happy"),
    "upbeat": ("happy", "danceable"),
    "sad": ("sad", "mood_sad"),
    "melancholic": ("sad", "mood_sad"),
    "melancholy": ("sad", "mood_sad"),
    "depressing": ("sad", "mood_sad"),
    "heartbreak": ("sad", "mood_sad"),
    "calm": ("relaxed", "mood_chill"),
    "relaxing": ("relaxed", "mood_chillout"),
    "relaxed": ("relaxed",),
    "chill": ("relaxed", "mood_chill", "mood_chillout"),
    "chillout": ("mood_chillout", "relaxed"),
    "mellow": ("mood_mellow", "relaxed"),
    "peaceful": ("relaxed", "mtt_soft"),
    "soft": ("mtt_soft",),
    "sleep": ("relaxed", "mtt_quiet"),
    "study": ("relaxed", "mood_instrumental"),
    "aggressive": ("aggressive",),
    "angry": ("aggressive",),
    "intense": ("aggressive",),
    "party": ("party", "mood_party"),
    "dance": ("danceable", "mood_dance"),
    "dancing": ("danceable",),
    "danceable": ("danceable",),
    "club": ("danceable", "mood_house"),
    "romantic": ("mood_sexy", "mood_beautiful"),
    "sexy": ("mood_sexy",),
    "beautiful": ("mood_beautiful",),
    "catchy": ("mood_catchy",),
    "instrumental": ("mood_instrumental", "mtt_no_vocals"),
    "female": ("mood_female_vocalists", "mtt_female"),
    "male": ("mood_male_vocalists", "mtt_male"),
    "hip hop": ("mood_hip_hop",),
    "hip-hop": ("mood_hip_hop",),
    "rap": ("mood_hip_hop",),
    "r&b": ("mood_rnb",),
    "rnb": ("mood_rnb",),
    "prog": ("mood_progressive_rock",),
    "progressive": ("mood_progressive_rock",),
    "edm": ("mood_electronic", "mood_dance"),
    "world": ("mtt_indian",),
    "orchestral": ("mtt_classical", "mtt_strings"),
}
for _label, _col in [
    *((lbl, c) for c, lbl in MOOD_COLUMNS.items()),
    *((lbl, c) for c, lbl in MTT_COLUMNS.items()),
]:
    if not re.fullmatch(r"\d0s", _label) and _label.lower() not in ("no vocals", "no vocal", "no voice"):
        _WORDS.setdefault(_label.lower(), ())
        _WORDS[_label.lower()] = tuple(dict.fromkeys((*_WORDS[_label.lower()], _col)))
#: phrase -> (tempo range, energy range) words; None = open end
_PACE: dict[
    str, tuple[tuple[float | None, float | None] | None, tuple[float | None, float | None] | None]
] = {
    "very fast": ((160, None), None),
    "fast": ((130, None), None),
    "slow": ((None, 95), None),
    "mid tempo": ((95, 130), None),
    "midtempo": ((95, 130), None),
    "running": ((120, None), (0.55, None)),
    "workout": ((115, None), (0.6, None)),
    "gym": ((115, None), (0.6, None)),
    "energetic": (None, (0.6, None)),
    "high energy": (None, (0.65, None)),
    "powerful": (None, (0.6, None)),
    "loud": (None, (0.6, None)),
    "low energy": (None, (None, 0.4)),
    "quiet": (None, (None, 0.35)),
    "calm": (None, (None, 0.45)),
    "sleep": ((None, 100), (None, 0.35)),
    "peaceful": (None, (None, 0.45)),
}
_DECADE = re.compile(r"\b(?:(19|20)?([0-9])0'?s|(sixties|seventies|eighties|nineties))\b")
_DECADE_WORDS = {"sixties": 196, "seventies": 197, "eighties": 198, "nineties": 199}
_YEAR = re.compile(r"\b(?:from |in |of )?(19[5-9][0-9]|20[0-3][0-9])\b")
_ARTIST = re.compile(
    r"\b(by|like|similar to|sounds like|artist)\s+([^,;.!?]+?)\s*"
    r"(?:$|[,;.!?]|\bfor\b|\band\b|\bwith\b)",
    re.IGNORECASE,
)
#: a tag score / a feature value that counts as a match (the prompt's "good match")
_MATCH, _FEATURE_MATCH = 0.2, 0.5
#: BPM / energy beyond a pace word's bound that count as fully matching it (a score of 1, as a
#: sure tag): "fast" ranks 170 BPM above 150 BPM above 130 BPM
_TEMPO_SPAN, _ENERGY_SPAN = 40.0, 0.3
_STOP = {
    "songs",
    "song",
    "music",
    "tracks",
    "playlist",
    "some",
    "me",
    "the",
    "a",
    "an",
    "for",
    "of",
    "with",
    "and",
    "or",
    "to",
    "play",
    "give",
    "i",
    "want",
    "please",
    "make",
}


@dataclass
class Understanding:
    columns: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    tempo: tuple[float | None, float | None] | None = None
    energy: tuple[float | None, float | None] | None = None
    years: tuple[int, int] | None = None
    era_column: str | None = None
    artist: str | None = None
    #: "like X": tracks that sound like X, an artist or a song (a sonic mix, resolved by
    #: :mod:`sidecar.chat.sounds_like`, which sets ``like_kind`` and names X as the library does)
    like: str | None = None
    like_kind: str | None = None
    #: require at least one of ``columns`` to score as a match (dropped when that finds nothing)
    strict: bool = True
    #: keep only tracks within the tempo, energy and year ranges (dropped when that finds nothing:
    #: the tempo and energy words still rank)
    keep_ranges: bool = True

    @property
    def empty(self) -> bool:
        return not (self.columns or self.tempo or self.energy or self.years or self.artist or self.like)

    @property
    def filters(self) -> bool:
        """Something besides the artist: words, ranges or years."""
        return bool(self.columns or self.tempo or self.energy or self.years)

    @property
    def summary(self) -> str:
        parts = []
        if self.columns:
            parts.append(f"scores {', '.join(self.columns)} (from {', '.join(repr(w) for w in self.words)})")
        if self.tempo:
            parts.append("tempo " + _range(self.tempo, " BPM"))
        if self.energy:
            parts.append("energy " + _range(self.energy, ""))
        if self.years:
            parts.append(f"years {self.years[0]}-{self.years[1]}")
        if self.artist:
            parts.append(f"artist like '{self.artist}'")
        if self.like and self.like_kind == "song":
            parts.append(f"sounding like the song {self.like} (a sonic mix that starts with it)")
        elif self.like:
            parts.append(f"sounding like {self.like} (a sonic mix of their tracks)")
        return (
            "; ".join(parts)
            if parts
            else "nothing I know (no mood, genre, tempo, energy, year or artist words)"
        )


def _range(r: tuple[float | None, float | None], unit: str) -> str:
    low, high = r
    if low is not None and high is not None:
        return f"{low:g}-{high:g}{unit}"
    return f">= {low:g}{unit}" if low is not None else f"<= {high:g}{unit}"


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " " + re.sub(r"\s+", " ", text.lower()).strip() + " "


def understand(request: str) -> Understanding:
    u = Understanding()
    raw = request.strip()
    m = _ARTIST.search(raw)
    text = _normal(raw)
    if m:
        name = m.group(2).strip()
        if name and name.lower() not in _STOP and _normal(name).strip() not in _WORDS:
            if m.group(1).lower() in ("by", "artist"):
                u.artist = name
            else:
                u.like = name
            text = text.replace(_normal(name).strip(), " ")
    d = _DECADE.search(text)
    if d:
        if d.group(3):
            start = _DECADE_WORDS[d.group(3)] * 10
        else:
            century = d.group(1) or ("20" if d.group(2) in "012" else "19")
            start = int(century + d.group(2) + "0")
        u.years = (start, start + 9)
        era = f"mood_{str(start)[2:]}s"
        u.era_column = era if era in MOOD_COLUMNS else None
        text = text[: d.start()] + " " + text[d.end() :]
    else:
        y = _YEAR.search(text)
        if y:
            u.years = (int(y.group(1)), int(y.group(1)))
            text = text[: y.start()] + " " + text[y.end() :]
    for phrase in sorted({*_WORDS, *_PACE}, key=len, reverse=True):
        pattern = f" {phrase} "
        if pattern not in text:
            continue
        text = text.replace(pattern, " ")
        u.words.append(phrase)
        for col in _WORDS.get(phrase, ()):
            if col not in u.columns:
                u.columns.append(col)
        tempo, energy = _PACE.get(phrase, (None, None))
        u.tempo = u.tempo or tempo
        u.energy = u.energy or energy
    return u


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def build_sql(u: Understanding, max_songs: int, per_artist: int, within: Sequence[str] = ()) -> str:
    """The ranking query for ``u`` (plain SQL on the view; validated like an LLM's answer).

    ``within``: only these item ids (the tracks of a sonic mix; the caller asks for all of them
    and breaks score ties by the mix's order, :func:`sidecar.chat.service._rules_query`).  The innermost subquery reads each score column once per row (``OFFSET 0`` keeps it from being
    flattened into the outer ones, which would extract the tag scores again for every mention);
    the next one filters and sums them, the next ranks each artist's tracks for the artist cap.
    """
    cheap: list[str] = []  # conditions on plain columns, applied while reading the view
    pace: list[str] = []  # how far into its range a track's tempo or energy lies: ranks "fast", "calm"
    for column, bounds, span in (("tempo", u.tempo, _TEMPO_SPAN), ("energy", u.energy, _ENERGY_SPAN)):
        if not bounds:
            continue
        low, high = bounds
        if u.keep_ranges:
            cheap += [f"{column} >= {low:g}"] if low is not None else []
            cheap += [f"{column} <= {high:g}"] if high is not None else []
        if low is not None and high is None:
            pace.append(f"coalesce(least(({column} - {low:g}) / {span:g}, 1), 0)")
        elif high is not None and low is None:
            pace.append(f"coalesce(least(({high:g} - {column}) / {span:g}, 1), 0)")
    if u.artist:
        name = re.sub(r"[%_]", " ", u.artist).strip()
        cheap.append(f"artist ILIKE {_quote('%' + name + '%')}")
    if within:
        cheap.append(f"item_id IN ({', '.join(_quote(i) for i in within)})")
    if u.years and not u.era_column and u.keep_ranges:
        cheap.append(f"year BETWEEN {u.years[0]} AND {u.years[1]}")
    scored: list[str] = []  # conditions on the score columns, applied once they are read
    if u.years and u.era_column and u.keep_ranges:
        scored.append(
            f"((year BETWEEN {u.years[0]} AND {u.years[1]}) OR (year IS NULL AND {u.era_column} >= 0.1))"
        )
    if u.columns and u.strict:
        scored.append(
            "("
            + " OR ".join(
                f"{c} >= {_MATCH if c.startswith(('mood_', 'mtt_')) else _FEATURE_MATCH}" for c in u.columns
            )
            + ")"
        )
    wanted = list(dict.fromkeys([*u.columns, *([u.era_column] if u.era_column else [])]))
    score = " + ".join([*(f"coalesce({c}, 0)" for c in wanted), *pace]) or "0"
    read = ", ".join(["item_id", "title", "artist", "year", "tempo", "energy", *wanted])
    return (
        f"SELECT item_id, title, artist, score FROM ("
        f"SELECT item_id, title, artist, score, "
        f"ROW_NUMBER() OVER (PARTITION BY lower(artist) ORDER BY score DESC, item_id) AS rn FROM ("
        f"SELECT item_id, title, artist, {score} AS score FROM ("
        f"SELECT {read} FROM {VIEW} WHERE {' AND '.join(cheap) or 'TRUE'} OFFSET 0) AS features "
        f"WHERE {' AND '.join(scored) or 'TRUE'}) AS scored) AS ranked "
        f"WHERE rn <= {per_artist if not u.artist else max_songs} "
        f"ORDER BY score DESC, item_id LIMIT {max_songs}"
    )
