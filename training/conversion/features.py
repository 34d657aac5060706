"""Feature specs: which columns of a leads file the conversion model reads, and how.

A `FeatureSpec` is declarative: the target column and its two values, the categorical
features with their known values (one-hot; an unknown value at scoring time is all zeros),
the numeric features (float; the spellings listed in ``absent`` mean "no value" and become
NaN, which XGBoost routes by its learned default direction), and the columns that are
known only **after** the call (``post_call``). A post-call column can never be a feature:
the spec refuses to be built with one, because the dialer scores a lead before dialling.

Specs shipped (docs/training.md, "Conversion"):

* ``synthetic_leads`` — the demo file of `training.conversion.data` (target ``converted``
  0/1).
* ``bank_marketing`` — UCI Bank Marketing (bank-full, target ``y`` yes/no): the customer
  (age, job, marital, education, default, balance, housing, loan), the contact channel, the
  call's calendar day and month, this campaign's attempt number (``campaign``) and the
  *previous* campaign's history (``pdays``, ``previous``, ``poutcome``). ``duration`` (the
  call's length) is known only after the call: left out.
* ``bank_marketing_no_calendar`` — the same without ``day`` and ``month``. Every lead in one
  day's queue shares the calendar, so only this one says how well leads rank *against each
  other* on a given day (the calendar mostly marks the campaign period in this file).

`read_labelled` reads a file for training or evaluation strictly: a bad value stops it
with the line and column named (never the value, which may be personal data).
`FeatureSpec.encode` is lenient, for the dialer's leads: unknown or missing values count
as unknown.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.conversion.data import CATEGORIES, NUMERIC
from training.errors import TrainingInputError

__all__ = [
    "BANK_MARKETING",
    "BANK_MARKETING_NO_CALENDAR",
    "SPECS",
    "SYNTHETIC_LEADS",
    "Categorical",
    "FeatureSpec",
    "LabelledLeads",
    "Numeric",
    "detect_spec",
    "read_labelled",
]

MAX_LISTED_PROBLEMS = 5


@dataclass(frozen=True)
class Categorical:
    """A column one-hot encoded over `values` (the values the training data may hold)."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Numeric:
    """A column read as a float; any spelling in `absent` means "no value" (NaN)."""

    name: str
    absent: tuple[str, ...] = ("",)


@dataclass(frozen=True)
class FeatureSpec:
    """What the model reads from a leads file; stored with each version (features.json)."""

    name: str
    target: str
    positive: str
    negative: str
    features: tuple[Categorical | Numeric, ...]
    #: columns known only after the call: never features
    post_call: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        leaked = sorted(set(names) & {*self.post_call, self.target})
        if leaked:
            raise ValueError(f"spec {self.name}: {', '.join(leaked)} is known only after the "
                             "call (or is the target) and cannot be a feature")
        if len(set(names)) != len(names):
            raise ValueError(f"spec {self.name}: a feature is listed twice")

    @property
    def categorical(self) -> dict[str, tuple[str, ...]]:
        return {f.name: f.values for f in self.features if isinstance(f, Categorical)}

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if isinstance(f, Numeric))

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a labelled file must have."""
        return (*(f.name for f in self.features), self.target)

    def feature_names(self) -> list[str]:
        """Model input names, in matrix column order: ``col=value`` one-hots, then numbers."""
        names = [f"{k}={v}" for k, values in self.categorical.items() for v in values]
        return names + list(self.numeric)

    def encode(self, leads: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Feature matrix (rows = leads); unknown categories and unreadable or missing
        numbers count as unknown (all-zero one-hots, NaN)."""
        names = self.feature_names()
        column = {name: i for i, name in enumerate(names)}
        numeric = [f for f in self.features if isinstance(f, Numeric)]
        x = np.zeros((len(leads), len(names)), dtype=np.float32)
        for row, lead in enumerate(leads):
            for key in self.categorical:
                j = column.get(f"{key}={lead.get(key)}")
                if j is not None:
                    x[row, j] = 1.0
            for f in numeric:
                x[row, column[f.name]] = _number(lead.get(f.name), f.absent)
        return x

    def label(self, value: str) -> int | None:
        """1 for `positive`, 0 for `negative`, None for anything else."""
        return {self.positive: 1, self.negative: 0}.get(value.strip())

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.name, "target": self.target, "positive": self.positive,
            "negative": self.negative, "post_call": list(self.post_call),
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "numeric": list(self.numeric),
            "absent": {f.name: list(f.absent) for f in self.features if isinstance(f, Numeric)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """A stored spec; versions from before specs had names read as the synthetic one."""
        absent = data.get("absent", {})
        features: list[Categorical | Numeric] = [
            Categorical(k, tuple(v)) for k, v in data["categorical"].items()]
        features += [Numeric(k, tuple(absent.get(k, ("",)))) for k in data["numeric"]]
        return cls(name=data.get("spec", "synthetic_leads"), target=data.get("target", "converted"),
                   positive=data.get("positive", "1"), negative=data.get("negative", "0"),
                   features=tuple(features), post_call=tuple(data.get("post_call", ())))


def _number(value: Any, absent: tuple[str, ...]) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        if value.strip() in absent:
            return math.nan
    elif str(value) in absent:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


SYNTHETIC_LEADS = FeatureSpec(
    name="synthetic_leads", target="converted", positive="1", negative="0",
    features=(*(Categorical(k, v) for k, v in CATEGORIES.items()), *(Numeric(k) for k in NUMERIC)),
    description="SYNTHETIC demo leads (callfleet train conversion --generate-sample)",
)

_BANK_CUSTOMER: tuple[Categorical | Numeric, ...] = (
    Numeric("age"),
    Categorical("job", ("admin.", "blue-collar", "entrepreneur", "housemaid", "management",
                        "retired", "self-employed", "services", "student", "technician",
                        "unemployed", "unknown")),
    Categorical("marital", ("divorced", "married", "single")),
    Categorical("education", ("primary", "secondary", "tertiary", "unknown")),
    Categorical("default", ("no", "yes")),
    Numeric("balance"),
    Categorical("housing", ("no", "yes")),
    Categorical("loan", ("no", "yes")),
    Categorical("contact", ("cellular", "telephone", "unknown")),
)
_BANK_CALENDAR: tuple[Categorical | Numeric, ...] = (
    Numeric("day"),
    Categorical("month", ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                          "nov", "dec")),
)
_BANK_HISTORY: tuple[Categorical | Numeric, ...] = (
    Numeric("campaign"),  # this call's attempt number in the campaign (1 = first call)
    Numeric("pdays", absent=("", "-1")),  # days since the previous campaign's call; -1 = never
    Numeric("previous"),  # calls in earlier campaigns
    Categorical("poutcome", ("failure", "other", "success", "unknown")),
)

BANK_MARKETING = FeatureSpec(
    name="bank_marketing", target="y", positive="yes", negative="no",
    features=(*_BANK_CUSTOMER, *_BANK_CALENDAR, *_BANK_HISTORY), post_call=("duration",),
    description="UCI Bank Marketing (bank-full); duration is known only after the call",
)
BANK_MARKETING_NO_CALENDAR = FeatureSpec(
    name="bank_marketing_no_calendar", target="y", positive="yes", negative="no",
    features=(*_BANK_CUSTOMER, *_BANK_HISTORY), post_call=("duration", "day", "month"),
    description="bank_marketing without the call's day and month",
)

SPECS: dict[str, FeatureSpec] = {
    s.name: s for s in (SYNTHETIC_LEADS, BANK_MARKETING, BANK_MARKETING_NO_CALENDAR)}
#: the spec "auto" picks for a header, in this order
_DETECTABLE = (SYNTHETIC_LEADS, BANK_MARKETING)


@dataclass
class LabelledLeads:
    """A labelled leads file read under `spec`: rows as column -> text, targets 0/1."""

    spec: FeatureSpec
    rows: list[dict[str, str]] = field(repr=False)
    y: np.ndarray = field(repr=False)
    delimiter: str = ","


def detect_spec(header: Sequence[str]) -> FeatureSpec:
    """The first shipped spec whose columns the header has all of, else the one whose target
    column it has (the caller then names the missing columns)."""
    for spec in _DETECTABLE:
        if set(spec.columns) <= set(header):
            return spec
    for spec in _DETECTABLE:
        if spec.target in header:
            return spec
    expected = "; ".join(f"{s.name}: {', '.join(s.columns)}" for s in _DETECTABLE)
    raise TrainingInputError(
        f"the header ({', '.join(header[:20]) or 'empty'}) matches no feature spec; expected "
        f"the columns of one of {expected} (or pass --spec)")


def _delimiter(first_line: str) -> str:
    """``;`` for UCI's own bank-full.csv, ``,`` otherwise."""
    return ";" if first_line.count(";") > first_line.count(",") else ","


def read_labelled(path: str | os.PathLike, spec: str | FeatureSpec = "auto",
                  min_rows: int = 100) -> LabelledLeads:
    """Read and check a labelled leads file (``,`` or ``;`` separated).

    Raises TrainingInputError naming the file, the line and the column of each problem
    (at most five listed), never the offending value.
    """
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        delimiter = _delimiter(first)
        reader = csv.reader(fh, delimiter=delimiter)
        header = [c.strip() for c in next(reader, [])]
        if isinstance(spec, str):
            chosen = detect_spec(header) if spec == "auto" else _named(spec)
        else:
            chosen = spec
        missing = [c for c in chosen.columns if c not in header]
        if missing:
            hint = (" (generate an example with: callfleet train conversion --generate-sample FILE)"
                    if chosen is SYNTHETIC_LEADS else "")
            raise TrainingInputError(
                f"{path}: missing column(s) {', '.join(missing)} for spec {chosen.name}; "
                f"expected {', '.join(chosen.columns)}{hint}")
        rows, y, problems = _checked_rows(reader, header, chosen)
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise TrainingInputError(f"{path}: {len(problems)} bad value(s): {shown}{more}")
    target = np.array(y, dtype=np.int32)
    if len(rows) < min_rows or target.min(initial=0) == target.max(initial=0):
        raise TrainingInputError(
            f"{path}: need at least {min_rows} rows with both outcomes, got {len(rows)}")
    return LabelledLeads(chosen, rows, target, delimiter)


def _named(name: str) -> FeatureSpec:
    if name not in SPECS:
        raise TrainingInputError(f"unknown feature spec {name!r}; use auto or one of {', '.join(SPECS)}")
    return SPECS[name]


def _checked_rows(reader, header: list[str], spec: FeatureSpec):
    """Rows, targets and one "line N, column 'c': problem" per bad value."""
    rows: list[dict[str, str]] = []
    y: list[int] = []
    problems: list[str] = []
    categorical = spec.categorical
    numeric = {f.name: f.absent for f in spec.features if isinstance(f, Numeric)}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue  # a blank line
        if len(values) != len(header):
            problems.append(f"line {line}: {len(values)} fields, the header has {len(header)}")
            continue
        row = {c: v.strip() for c, v in zip(header, values, strict=True)}
        for name, known in categorical.items():
            if row[name] not in known:
                problems.append(f"line {line}, column '{name}': not one of the {len(known)} "
                                f"known values ({', '.join(known)})")
        for name, absent in numeric.items():
            if row[name] not in absent and not _is_number(row[name]):
                problems.append(f"line {line}, column '{name}': not a number")
        label = spec.label(row[spec.target])
        if label is None:
            problems.append(f"line {line}, column '{spec.target}': must be {spec.negative} or "
                            f"{spec.positive}")
        rows.append(row)
        y.append(label or 0)
    return rows, y, problems


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
