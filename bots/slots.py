"""What a script state expects the caller to say next, and reading it from ASR text.

A state that asks for an order number, a PIN or a yes/no declares it (`ask.expect` in the
script). The expectation travels with the turn's ASR request, so recognition can use it
(deployments/engines/asr_slots.py decodes against the expected vocabulary), and the same
module turns what was heard into the slot's value: "one oh two" -> "102", "double
seven" -> "77", "A one zero zero two" -> "A1002". Plain Python, no models.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["SlotSpec", "slot_value", "spoken_digits"]

SlotKind = Literal["digits", "number", "order_id", "yes_no", "choice"]

_DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2",
                "to": "2", "too": "2", "three": "3", "four": "4", "for": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
          "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_REPEAT = {"double": 2, "triple": 3}
_YES = {"yes", "yeah", "yep", "yup", "ya", "sure", "correct", "right", "absolutely", "ok",
        "okay", "affirmative", "certainly"}
_NO = {"no", "nope", "nah", "negative", "incorrect", "wrong", "not"}
_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_FILLERS = {"um", "uh", "er", "erm", "its", "is", "it", "my", "the", "number", "and",
            "a", "an", "order", "code", "pin", "uh-huh"}


class SlotSpec(BaseModel):
    """`kind`: digits (a PIN, an account number), number (an amount said as a number),
    order_id (letters then digits, `pattern` decides the shape), yes_no, choice (one of
    `options`). `length` / `min_length` / `max_length` bound digits; `pattern` is a
    regular expression the normalised value must match in full."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SlotKind
    length: int | None = Field(None, ge=1, le=32)
    min_length: int | None = Field(None, ge=1, le=32)
    max_length: int | None = Field(None, ge=1, le=32)
    pattern: str | None = Field(None, max_length=200)
    options: tuple[str, ...] = ()

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SlotSpec:
        if self.kind == "choice" and not self.options:
            raise ValueError("a 'choice' slot needs 'options'")
        if self.kind != "choice" and self.options:
            raise ValueError("'options' belong to a 'choice' slot")
        if self.length is not None and (self.min_length or self.max_length):
            raise ValueError("give 'length' or 'min_length'/'max_length', not both")
        return self

    @property
    def lengths(self) -> tuple[int, int]:
        if self.length is not None:
            return self.length, self.length
        return self.min_length or 1, self.max_length or 32

    @property
    def single_word(self) -> bool:
        """One short word is the whole answer (a menu digit, yes/no)."""
        return self.kind == "yes_no" or (self.kind == "digits" and self.lengths == (1, 1))


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("'", "").replace("-", " "))


def spoken_digits(text: str) -> str | None:
    """The digit string said in `text`, or None when something other than digits (and a
    few fillers) was said. "one oh two" -> "102", "double seven" -> "77", "1 0 2",
    "twenty one" -> "21", "nineteen eighty" -> "1980"."""
    out: list[str] = []
    repeat = 1
    words = _words(text)
    i = 0
    while i < len(words):
        word = words[i]
        if word.isdigit():
            out.append(word * repeat)
            repeat = 1
        elif word in _REPEAT:
            repeat = _REPEAT[word]
        elif word in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[word] * repeat)
            repeat = 1
        elif word in _TEENS:
            out.append(str(_TEENS[word]))
        elif word in _TENS:
            unit = words[i + 1] if i + 1 < len(words) else ""
            if unit in _DIGIT_WORDS and _DIGIT_WORDS[unit] != "0":
                out.append(str(_TENS[word] + int(_DIGIT_WORDS[unit])))
                i += 1
            else:
                out.append(str(_TENS[word]))
        elif word == "hundred" and out:
            out[-1] += "00"
        elif word not in _FILLERS:
            return None
        i += 1
    return "".join(out) or None


def _order_id(text: str) -> str | None:
    words = _words(text)
    letters = ""
    while words and words[0] in _FILLERS - {"a"}:
        words = words[1:]
    while words and len(words[0]) == 1 and words[0].isalpha() and words[0] != "o":
        letters += words[0]  # "A one zero zero two", "a1002": the letters lead
        words = words[1:]
    digits = spoken_digits(" ".join(words))
    return f"{letters.upper()}{digits}" if letters and digits else None


def _yes_no(text: str) -> str | None:
    words = [w for w in _words(text) if w not in ("um", "uh", "er", "well", "oh")][:2]
    if not words:
        return None
    if words[0] in _NO:
        return "no"
    return "yes" if words[0] in _YES or words == ["of", "course"] else None


def _choice(text: str, options: tuple[str, ...]) -> str | None:
    heard = " ".join(_words(text))
    found = [o for o in options if re.search(rf"\b{re.escape(' '.join(_words(o)))}\b", heard)]
    return max(found, key=len) if found else None


def slot_value(spec: SlotSpec, text: str) -> str | None:
    """The slot's normalised value heard in `text`, or None when `text` does not fill it
    (wrong kind, wrong length, not matching `pattern`)."""
    if spec.kind in ("digits", "number"):
        value = spoken_digits(text)
        if value is not None and spec.kind == "digits":
            low, high = spec.lengths
            value = value if low <= len(value) <= high else None
    elif spec.kind == "order_id":
        value = _order_id(text)
    elif spec.kind == "yes_no":
        value = _yes_no(text)
    else:
        value = _choice(text, spec.options)
    if value is not None and spec.pattern and not re.fullmatch(spec.pattern, value):
        return None
    return value
