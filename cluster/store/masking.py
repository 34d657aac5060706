"""Phone numbers as people see them in listings, exports and the API: the country code
and the last three digits, the rest masked (``+14155550123`` → ``+14******123``). The
store keeps the full number; only `callfleet records export --full-numbers`, run on the
machine by an operator, writes it out."""

from __future__ import annotations

__all__ = ["MASKED_FIELDS", "mask_number", "mask_row"]

#: the fields of a call row that hold a phone number
MASKED_FIELDS = ("caller", "callee", "phone")


def mask_number(number: str | None) -> str | None:
    """The number with its middle digits replaced by ``*`` (None and "" unchanged)."""
    if not number:
        return number
    text = str(number)
    if len(text) <= 5:
        return "*" * max(0, len(text) - 2) + text[-2:]
    head = 3 if text.startswith("+") else 2
    keep_tail = 3
    middle = len(text) - head - keep_tail
    return text[:head] + "*" * middle + text[-keep_tail:]


def mask_row(row: dict, fields: tuple[str, ...] = MASKED_FIELDS) -> dict:
    """A copy of `row` with its phone-number fields masked."""
    return {k: (mask_number(v) if k in fields else v) for k, v in row.items()}
