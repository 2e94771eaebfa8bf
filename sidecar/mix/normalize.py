"""Title/artist/album normalisation for duplicate detection in mixes.

Two tracks are "the same song" for the mix engine when their normalised title *and*
normalised primary artist are equal (:func:`track_key`). The rules, in order:

1. **Case and accents** – Unicode compatibility decomposition (NFKD), accents (combining
   marks) removed from Latin/Greek/Cyrillic letters only (a Japanese dakuten is meaning,
   not decoration, so it is kept), ``casefold()`` (``ß`` → ``ss``), a few letters without a
   decomposition mapped by hand (``ø`` → ``o``, ``æ`` → ``ae``, ``œ`` → ``oe``, ``ł`` → ``l``,
   ``đ``/``ð`` → ``d``, ``þ`` → ``th``, ``ı`` → ``i``), then NFC again.
2. **Featured artists** – everything from ``feat.``/``ft.``/``featuring`` onwards is
   dropped, bracketed or not: ``Song (feat. X)`` → ``song``; ``A feat. B`` → ``a``.
3. **Version suffixes** (titles only) – a trailing bracket group ``(...)``, ``[...]``,
   ``{...}`` or a trailing `` - ...`` part (space, dash or en/em dash, space) is dropped when
   it contains one of the words in :data:`VERSION_WORDS` (remaster(ed), live, mono,
   stereo, version, edit, mix/remix, demo, acoustic, unplugged, session(s), bonus, deluxe,
   edition, anniversary, explicit, clean, recorded, ...). Repeated until nothing changes,
   so ``Song (Live) [Remastered 2011] - Mono`` → ``song``. A group without such a word is
   part of the title and stays: ``Song (Part 2)`` ≠ ``Song (Part 1)``; a *leading* group
   (``(I Can't Get No) Satisfaction``) is never touched.
4. **Punctuation and whitespace** – apostrophes vanish (``don't`` → ``dont``), ``&`` and
   ``+`` become ``and``, every other non-alphanumeric character becomes a space, runs
   of whitespace collapse, ends are trimmed.
5. Artists additionally lose a leading ``the `` (``The Beatles`` = ``Beatles``).
6. Placeholder artists are no artist: ``normalize_artist`` returns ``""`` (which the engine
   reads as "unknown": no artist cap, no spacing rule) for an empty artist and for the
   stand-ins media servers and taggers put there -- ``[unknown]`` (Subsonic),
   ``[Unknown Artist]`` (Navidrome), ``Unknown``, ``Unknown Artist``, ``<unknown>`` -- and
   ``Various Artists``, in any case, bracketed or not (:data:`PLACEHOLDER_ARTISTS`).

If stripping leaves a title empty (a track literally called ``(Live)``), the
punctuation-normalised full title is used instead. Functions are cached (pure, bounded
LRU), so normalising the same popular tracks for every request costs a dict lookup.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "PLACEHOLDER_ARTISTS",
    "VERSION_WORDS",
    "fold",
    "normalize_artist",
    "normalize_album",
    "normalize_title",
    "track_key",
]

#: Words that mark a trailing bracket group / dash suffix as a version note, not title.
VERSION_WORDS: tuple[str, ...] = (
    "remaster",
    "remastered",
    "remasterd",
    "remastering",
    "live",
    "mono",
    "stereo",
    "version",
    "edit",
    "mix",
    "remix",
    "remixed",
    "demo",
    "acoustic",
    "unplugged",
    "session",
    "sessions",
    "bonus",
    "deluxe",
    "edition",
    "anniversary",
    "explicit",
    "clean",
    "recorded",
    "mixed",
    "single",
)

#: Artist names that say "no artist" (compared after case/accent folding, with brackets and
#: punctuation removed).  "Various Artists" is a real *album*-artist label (a compilation),
#: but normalize_artist is about a *track's* artist, where it only says the tagger did not
#: know who performs this track: for the caps and spacing rules it is unknown too.
PLACEHOLDER_ARTISTS: frozenset[str] = frozenset({"", "unknown", "unknown artist", "various artists"})

_VERSION_RE = re.compile(r"\b(?:" + "|".join(VERSION_WORDS) + r"|re-?master(?:ed)?)\b")
_FEAT_RE = re.compile(r"\s*[(\[{]?\s*\b(?:feat|ft|featuring)\b\.?(?:\s|$).*$")
_TRAILING_GROUP_RE = re.compile(r"\s*([(\[{])([^()\[\]{}]*)[)\]}]\s*$")
_DASH_SUFFIX_RE = re.compile(r"\s+[-\u2013\u2014]\s+([^-\u2013\u2014]*)$")
_APOSTROPHES_RE = re.compile(r"['\u2019\u2018`\u00b4]")
_AND_RE = re.compile(r"\s*[&+]\s*")
_NON_WORD_RE = re.compile(r"[\W_]+")
_LEADING_THE_RE = re.compile(r"^the\s+")

_SPECIAL = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def fold(text: str) -> str:
    """Lower-case, accent-free (for Latin/Greek/Cyrillic letters) form of *text*."""
    decomposed = unicodedata.normalize("NFKD", text)
    out: list[str] = []
    base_is_western = False
    for ch in decomposed:
        if unicodedata.combining(ch):
            if base_is_western:
                continue
        else:
            base_is_western = ord(ch) < 0x0530
        out.append(ch)
    folded = "".join(out).casefold().translate(_SPECIAL)
    return unicodedata.normalize("NFC", folded)


def _squash(text: str) -> str:
    text = _APOSTROPHES_RE.sub("", text)
    text = _AND_RE.sub(" and ", text)
    return " ".join(_NON_WORD_RE.sub(" ", text).split())


def _strip_versions(text: str) -> str:
    while True:
        group = _TRAILING_GROUP_RE.search(text)
        if group is not None and group.start() > 0 and _VERSION_RE.search(group.group(2)):
            text = text[: group.start()]
            continue
        dash = _DASH_SUFFIX_RE.search(text)
        if dash is not None and dash.start() > 0 and _VERSION_RE.search(dash.group(1)):
            text = text[: dash.start()]
            continue
        return text


@lru_cache(maxsize=1 << 16)
def normalize_title(title: str) -> str:
    """Normalised song title: see the module docstring for the exact rules."""
    folded = fold(title).strip()
    stripped = _FEAT_RE.sub("", folded)
    stripped = _strip_versions(stripped)
    result = _squash(stripped)
    return result if result else _squash(folded)


@lru_cache(maxsize=1 << 16)
def normalize_artist(artist: str) -> str:
    """Normalised primary artist: featured artists and a leading "the" dropped; ``""`` for a
    placeholder (``[unknown]``, ``Various Artists``, ...: :data:`PLACEHOLDER_ARTISTS`)."""
    folded = fold(artist).strip()
    stripped = _squash(_FEAT_RE.sub("", folded))
    if not stripped:
        stripped = _squash(folded)
    if stripped in PLACEHOLDER_ARTISTS or _squash(folded) in PLACEHOLDER_ARTISTS:
        return ""
    without_the = _LEADING_THE_RE.sub("", stripped)
    return without_the if without_the else stripped


@lru_cache(maxsize=1 << 16)
def normalize_album(album: str) -> str:
    """Normalised album title (case, accents, punctuation only; editions are kept)."""
    return _squash(fold(album))


def track_key(title: str, artist: str) -> tuple[str, str] | None:
    """``(normalised title, normalised primary artist)``, or ``None`` for an empty title.

    Tracks without a usable title are never merged by name (they are still de-duplicated
    by id and by vector).
    """
    norm_title = normalize_title(title) if title else ""
    if not norm_title:
        return None
    return norm_title, normalize_artist(artist) if artist else ""
