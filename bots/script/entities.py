"""Small, rule-based entity extractors for what callers say to the shipped bots.

Deliberately modest: order ids (a letter and four digits, as the demo shop issues them,
also when spoken digit by digit: "a one zero zero two"), a number, a yes/no answer, a day
("tomorrow", "next monday", "the weekend") and a time of day ("in the afternoon",
"3 pm"). Input is ASR text, so case and punctuation are not relied on. Each extractor
returns a plain string or int; `extract_entities` returns only the ones found.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ENTITY_NAMES", "extract_entities"]

ENTITY_NAMES = ("order_id", "number", "yes_no", "date", "time_of_day", "slot")
"""`slot` is the value of the state's `ask.expect` (bots/slots.py), set by the engine."""

_DIGITS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3",
           "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_SMALL = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
          "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_YES = {"yes", "yeah", "yep", "yup", "ya", "sure", "correct", "right", "absolutely",
        "certainly", "definitely", "ok", "okay", "affirmative", "indeed"}
_NO = {"no", "nope", "nah", "negative", "never", "incorrect", "wrong"}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WORD = re.compile(r"[a-z0-9']+")
_ORDER_ID = re.compile(r"\b([a-z])\s*-?\s*(\d{4})\b")
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.?|p\.m\.?)(?![a-z])")
_OCLOCK = re.compile(r"\b(\d{1,2})\s*o'?clock\b")


def _spoken_digits(text: str) -> str:
    """Turn runs of digits said one by one ("one zero zero two", "1 0 0 2") into "1002".
    A lone "one" or "oh" stays a word: only runs of two or more are digits."""
    words = text.split()
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 2:
            out.append("".join(_DIGITS.get(w, w) for w in run))
        else:
            out.extend(run)
        run.clear()

    for word in words:
        if word in _DIGITS or (word.isdigit() and len(word) == 1):
            run.append(word)
        else:
            flush()
            out.append(word)
    flush()
    return " ".join(out)


def _normalise(text: str) -> str:
    text = text.lower().replace("-", " - ")
    text = re.sub(r"[,!?;\"]", " ", text)
    text = re.sub(r"\.(?!m\b)(?=\s|$)", " ", text)  # sentence dots, not the "p.m." dots
    return _spoken_digits(" ".join(text.split()))


def order_id(text: str) -> str | None:
    match = _ORDER_ID.search(text)
    return f"{match.group(1).upper()}{match.group(2)}" if match else None


def number(text: str) -> int | None:
    for word in text.split():
        if word.isdigit():
            return int(word)
    words = _WORD.findall(text)
    for i, word in enumerate(words):
        if word in _TENS:
            unit = words[i + 1] if i + 1 < len(words) else ""
            extra = int(_DIGITS[unit]) if unit in _DIGITS and unit not in ("o", "oh") else 0
            return _TENS[word] + extra
        if word in _SMALL:
            return _SMALL[word]
        if word in _DIGITS and word not in ("o", "oh"):
            return int(_DIGITS[word])
    return None


def yes_no(text: str) -> str | None:
    """"yes"/"no" when the answer leads the utterance ("yeah sure", "no thanks")."""
    words = _WORD.findall(text)[:3]
    lead = [w for w in words if w not in ("um", "uh", "er", "well", "oh")]
    if not lead:
        return None
    if lead[:2] == ["not", "really"] or lead[0] in _NO:
        return "no"
    if lead[0] in _YES or lead[:2] in (["that's", "right"], ["of", "course"]):
        return "yes"
    return None


def date(text: str) -> str | None:
    if "day after tomorrow" in text:
        return "the day after tomorrow"
    for phrase in ("tomorrow", "today", "tonight"):
        if re.search(rf"\b{phrase}\b", text):
            return "today" if phrase == "tonight" else phrase
    for day in _WEEKDAYS:
        if re.search(rf"\b{day}s?\b", text):
            return f"next {day}" if re.search(rf"\bnext {day}", text) else day
    if re.search(r"\bnext week\b", text):
        return "next week"
    if re.search(r"\b(the |this |at the )?weekend\b", text):
        return "the weekend"
    return None


def time_of_day(text: str) -> str | None:
    if match := _CLOCK.search(text):
        hour, minute, half = match.groups()
        suffix = "am" if half.startswith("a") else "pm"
        return f"{int(hour)}:{minute} {suffix}" if minute else f"{int(hour)} {suffix}"
    if match := _OCLOCK.search(text):
        return f"{int(match.group(1))} o'clock"
    for part in ("morning", "afternoon", "evening", "lunchtime"):
        if re.search(rf"\b{part}\b", text):
            return part
    if re.search(r"\btonight\b", text):
        return "evening"
    return None


def extract_entities(text: str) -> dict[str, Any]:
    """The entities found in `text` (ASR output), keyed by `ENTITY_NAMES`."""
    if not text or not text.strip():
        return {}
    norm = _normalise(text)
    found: dict[str, Any] = {}
    if oid := order_id(norm):
        found["order_id"] = oid
    without_id = _ORDER_ID.sub(" ", norm) if "order_id" in found else norm
    if (value := number(without_id)) is not None and not _CLOCK.search(without_id):
        found["number"] = value
    for name, extractor in (("yes_no", yes_no), ("date", date), ("time_of_day", time_of_day)):
        if (value := extractor(norm)) is not None:
            found[name] = value
    return found
