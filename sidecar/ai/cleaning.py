"""From an LLM's answer to a playlist name, or to nothing.

Models wrap the name they were asked for in many ways: reasoning blocks (``<think>``,
``[/INST]``, gpt-oss channels), markdown, quotes, a preamble ("Sure! Here's a name:"), numbering,
an explanation on the next lines, JSON, decorative Unicode letters, emoji.  :func:`clean_name`
peels those off and accepts what is left only when it is a plain ASCII name of
:data:`MIN_LENGTH`-:data:`MAX_LENGTH` characters.
"""

from __future__ import annotations

import json
import re
import unicodedata

MIN_LENGTH = 15
MAX_LENGTH = 40

#: reasoning blocks, removed with their content (an unclosed one swallows the rest of the answer)
_THINK_BLOCK = re.compile(
    r"<(think|thinking|thought|reasoning|reflection|scratchpad)\b[^>]*>.*?(</\1\s*>|\Z)"
    r"|\[(THINK|THOUGHT|REASONING)\].*?(\[/\3\]|\Z)"
    r"|\u25c1think\u25b7.*?(\u25c1/think\u25b7|\Z)",
    re.IGNORECASE | re.DOTALL,
)
#: end markers whose opening half some models never print: keep only what follows the last one
_THINK_END = re.compile(
    r"</(think|thinking|thought|reasoning)\s*>|\[/(INST|THOUGHT|THINK)\]|\u25c1/think\u25b7", re.IGNORECASE
)
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]{0,40}\|>")
_CODE_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.MULTILINE)
#: words that mark the text before a colon as an introduction ("Here's a name for it: ...")
_PREAMBLE_WORDS = re.compile(
    r"\b(?:names?|titles?|suggest\w*|propos\w*|here'?s|here is|sure|certainly|"
    r"how about|(?:i'd|i would|let's) call it|go with|options?|pick|choice|answer|playlist)\b",
    re.IGNORECASE,
)
_FILLER = r"(?:sure|okay|ok|certainly|of course|absolutely|alright|great|yes|got it|happy to help)"
_ONLY_FILLER = re.compile(
    rf"^{_FILLER}(?:[\s!.,]+(?:here(?:'s| is) (?:one|a name|my suggestion|the name)|"
    rf"how about))?[\s!.,:]*$|^(?:here(?:'s| is) (?:one|a name|my suggestion)|how about)"
    rf"[\s!.,:]*$",
    re.IGNORECASE,
)
_LEADING_FILLER = re.compile(rf"^{_FILLER}[!,.]+\s+", re.IGNORECASE)
#: an introduction without a colon: "How about X?", "The name is X", "I'd call it X"
_INTRO = re.compile(
    r"^(?:(?:the|my|a|your)\s+(?:playlist\s+)?(?:name|title)\s+(?:is|would be|could be|will be)|"
    r"i(?:'d| would)? (?:suggest|propose|go with|call it|name it)|"
    r"let's call it)\s+",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"^(?:how|what) about\s+(.+?)\s*\?$", re.IGNORECASE)
_REFUSAL = re.compile(
    r"^(?:error\b|i'm sorry|i am sorry|sorry\b|i cannot|i can't|i can not|i'm unable|"
    r"i am unable|as an ai\b|unfortunately\b)",
    re.IGNORECASE,
)
_NUMBERING = re.compile(r"^(?:#\s*)?(?:option\s+)?(?:\d{1,2}|[a-c])(?:[.):]|\s*-)\s+", re.IGNORECASE)
_LIST_MARK = re.compile(r"^(?:[-*+\u2022>]|#{1,6})\s*")
_SPAN = f"{{{MIN_LENGTH},{MAX_LENGTH}}}"
_QUOTED = re.compile(rf"\"([^\"]{_SPAN})\"|\u201c([^\u201d]{_SPAN})\u201d|\*\*([^*]{_SPAN})\*\*")
_WRAPPERS = "\"'`*_\u201c\u201d\u2018\u2019\u00ab\u00bb"
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9 \-&'!.,?()\[\]]")
_TRAILING_NUMBER = re.compile(r"\s*\(\d+\)$")
_DASHES = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2012": "-",
        "\u2212": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
    }
)


def clean_name(raw: str | None) -> str | None:
    """The playlist name in ``raw`` (an LLM answer), or ``None`` when there is no usable one."""
    if not isinstance(raw, str):
        return None
    text = _strip_thinking(raw)
    text = _from_json(text)
    text = _CODE_FENCE.sub("", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or _ONLY_FILLER.match(line):
            continue
        whole = _strip_marks(line)
        line = _drop_preamble(whole)
        if not line:
            continue  # "Here's a name for your playlist:" on a line of its own
        return _finish(line) or (_finish(whole) if line != whole else None)
    return None


def _strip_thinking(text: str) -> str:
    text = _THINK_BLOCK.sub("\n", text)
    ends = list(_THINK_END.finditer(text))
    if ends:
        text = text[ends[-1].end() :]
    if "<|message|>" in text:  # gpt-oss harmony: the final channel's message comes last
        text = text.rsplit("<|message|>", 1)[1]
    return _SPECIAL_TOKEN.sub(" ", text)


def _from_json(text: str) -> str:
    stripped = _CODE_FENCE.sub("", text).strip()
    if not stripped.startswith(("{", "[")):
        return text
    try:
        data = json.loads(stripped)
    except ValueError:
        return text
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        for key in ("name", "title", "playlist_name", "playlist", "playlistName"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return data if isinstance(data, str) else text


def _strip_marks(line: str) -> str:
    line = line.translate(_DASHES)
    line = _LIST_MARK.sub("", line)
    line = _NUMBERING.sub("", line)
    return line.strip()


def _drop_preamble(line: str) -> str:
    line = _LEADING_FILLER.sub("", line)
    line = _INTRO.sub("", line)
    question = _QUESTION.match(line)  # "How about X?"
    if question:
        line = question.group(1)
    head, colon, tail = line.partition(":")
    if colon and len(head) <= 70 and _PREAMBLE_WORDS.search(head):
        return tail.strip()
    return line.strip()


def _finish(line: str) -> str | None:
    if _REFUSAL.match(line):
        return None
    quoted = _QUOTED.search(line)
    unwrapped = line.strip(_WRAPPERS + " ")
    if quoted and len(unwrapped) > len(next(g for g in quoted.groups() if g)):
        line = next(g for g in quoted.groups() if g)  # the quoted name inside a sentence
    name = _ascii(line)
    if len(name) > MAX_LENGTH:  # "Name - an explanation" / "Name: because ..."
        for sep in (" - ", ": ", " (", "; "):
            head = name.split(sep, 1)[0].strip()
            if sep in name and MIN_LENGTH <= len(head) <= MAX_LENGTH:
                name = head
                break
    return name if _usable(name) else None


def _ascii(text: str) -> str:
    """ASCII letters, digits, spaces and ``- & ' ! . , ? ( ) [ ]``; accents and styled letters
    (full-width, mathematical bold) folded to their plain letter, everything else dropped."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = _NOT_ALLOWED.sub(" ", folded.replace("_", " "))
    folded = re.sub(r"\s+", " ", folded).strip()
    folded = _TRAILING_NUMBER.sub("", folded)
    if len(folded) > 1 and folded[0] == folded[-1] == "'":
        folded = folded[1:-1]
    folded = folded.strip(" -.,&:")
    if folded.startswith("(") and folded.endswith(")") or folded.startswith("[") and folded.endswith("]"):
        folded = folded[1:-1].strip()
    return folded


def _usable(name: str) -> bool:
    if not MIN_LENGTH <= len(name) <= MAX_LENGTH:
        return False
    letters = sum(c.isalpha() for c in name)
    return letters >= 0.6 * len(name.replace(" ", "")) and not _REFUSAL.match(name)
