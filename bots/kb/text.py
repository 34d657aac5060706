"""Text handling shared by indexing, search and highlighting.

Tokens are lower-cased alphanumeric runs (accents folded, ``customer's`` -> ``customer``,
``don't`` -> ``dont``). Search terms are the tokens that are not stop words, reduced by a
small suffix-stripping stemmer so that ``refunds``, ``refunded`` and ``refunding`` all
meet at ``refund``, and ``shipping``, ``shipped`` and ``shipment`` at ``ship``. The
stemmer only has to be consistent (the same word always gives the same stem), not
linguistically right: stems are never shown to anyone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

__all__ = [
    "STOP_WORDS", "highlight", "search_terms", "sentences", "stem", "tokens", "word_spans",
]

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

# Function words that carry no topic. Question words ("how", "where", "when") and
# pronouns are here too: every FAQ title has them, so they only add noise.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can cannot could did do does doing done down during each
either else ever every few for from further get gets got had has have having he her here
hers herself him himself his how however i if in into is it its itself just let like may
me might more most much must my myself need no nor not now of off on once only or other
our ours ourselves out over own please same shall she should so some such than thank
thanks that the their theirs them themselves then there these they this those through to
too under until up us very was way we well were what when where whether which while who
whom why will with would yes yet you your yours yourself yourselves hi hello hey okay ok
want wanted wants know tell told im ive id dont doesnt didnt cant wont isnt arent
""".split())

# Longest first; each is tried once, in this order. (suffix, minimum stem length left)
_SUFFIXES = (
    ("ational", 4), ("ation", 4), ("ments", 3), ("ment", 3), ("ings", 3), ("ing", 3),
    ("edly", 3), ("ed", 3), ("ly", 4), ("ies", 3), ("es", 4), ("s", 3),
)
_NO_PLURAL_S = ("ss", "us", "is", "ous")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of `text` (possessive ``'s`` dropped, other apostrophes removed)."""
    return [_clean(m.group()) for m in _WORD_RE.finditer(_fold(text))]


def word_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, token) for each word of `text`, offsets into `text` itself.

    Accent folding can change a string's length, so the spans are found on a per-character
    folded copy that keeps the offsets of the original.
    """
    folded = "".join(_fold(ch)[:1] or " " for ch in text)
    for match in _WORD_RE.finditer(folded):
        yield match.start(), match.end(), _clean(match.group())


def stem(word: str) -> str:
    """A crude but consistent stem of one lower-case token."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, min_left in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= min_left:
            if suffix == "s" and word.endswith(_NO_PLURAL_S):
                break
            if suffix == "ies":
                word = word[:-3] + "y"
            else:
                word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # shipp -> ship, cancell (kept: 'l' excluded) ...
    if len(word) > 4 and word.endswith("ll"):
        word = word[:-1]  # cancell -> cancel
    if len(word) > 3 and word[-1] in "ey":
        word = word[:-1]  # change/changed -> chang, delivery/delivered -> deliver
    return word


def search_terms(text: str) -> list[str]:
    """The stems of the non-stop-word tokens of `text`, in order, repeats kept."""
    return [stem(t) for t in tokens(text) if t not in STOP_WORDS and len(t) > 1]


def highlight(text: str, terms: Iterable[str], mark: str = "**") -> str:
    """`text` with every word whose stem is in `terms` wrapped in `mark` (``**word**``).

    Adjacent marked words are merged into one span (``**return label**``) so that the
    markup reads cleanly.
    """
    wanted = set(terms)
    if not wanted or not text:
        return text
    hits = [(s, e) for s, e, tok in word_spans(text)
            if tok not in STOP_WORDS and stem(tok) in wanted]
    if not hits:
        return text
    merged: list[list[int]] = []
    for start, end in hits:
        if merged and text[merged[-1][1]:start].strip() == "":
            merged[-1][1] = end
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out.append(text[last:start])
        out.append(f"{mark}{text[start:end]}{mark}")
        last = end
    out.append(text[last:])
    return "".join(out)


def sentences(text: str) -> list[str]:
    """`text` split into sentences (after ., ! or ? followed by a capital or digit)."""
    text = " ".join(text.split())
    return [s for s in _SENTENCE_END_RE.split(text) if s]


def _fold(text: str) -> str:
    """Lower-case and strip accents (café -> cafe); curly apostrophes become straight."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _clean(token: str) -> str:
    if token.endswith("'s"):
        return token[:-2]
    return token.replace("'", "")
