"""FreeSWITCH's api argument splitter, ``switch_separate_string`` (``switch_utils.c``),
ported so the simulator reads a command line exactly as the switch would, not more
leniently: a module that declares ``char *argv[6]`` gets at most six arguments, the
last one holding the rest of the line.

What the C code does, and this port with it:

- a line starting ``^^X`` (X any character, followed by more text) splits on X instead;
- on a space: runs of spaces separate, a single quote toggles quoting (a quoted space
  does not split), a backslash makes the next character literal for the split;
- on any other delimiter: a quote toggles only when another quote follows it;
- then every argument is cleaned: leading spaces dropped; ``\\'``, ``\\"``, ``\\\\`` (and
  ``\\<delimiter>`` for a non-space delimiter) become the character, ``\\n``, ``\\r``,
  ``\\t``, ``\\s`` become LF, CR, TAB, space; any other backslash stays as it is; a quote
  that has a partner later in the argument is removed (quoted text kept); trailing
  spaces outside quotes dropped.

So a JSON argument survives only if it has no raw space (outside the last argument), no
apostrophes and no ``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r`` or ``\\s`` escapes: what
`telephony.esl_commands.command_line_json` produces.
"""

from __future__ import annotations

__all__ = ["separate_string"]

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def separate_string(text: str, delim: str = " ", limit: int = 1024) -> list[str]:
    """``switch_separate_string(text, delim, argv, limit)``: at most `limit` arguments."""
    if not text or limit < 1:
        return []
    if text.startswith("^^") and len(text) > 3:
        delim, text = text[2], text[3:]
    spans = _split_blank(text, limit) if delim == " " else _split_char(text, delim, limit)
    return [_cleanup(part, "" if delim == " " else delim) for part in spans]


def _split_blank(text: str, limit: int) -> list[str]:
    """``separate_string_blank_delim`` before its cleanup: the raw argument strings. The
    scan stops as soon as the `limit`-th argument has started: it keeps the rest."""
    starts: list[int] = []
    ends: list[int] = []
    i, n, quoted, state = 0, len(text), False, "start"
    while i < n and len(starts) < limit:
        ch = text[i]
        if state == "start":
            starts.append(i)
            state = "skip_initial"
        elif state == "skip_initial":
            if ch == " ":
                i += 1
            else:
                state = "find"
        elif state == "find":
            if ch == "\\":
                i += 1  # the next character does not split
            elif ch == "'":
                quoted = not quoted  # no lookahead here, unlike the other splitter
            elif ch == " " and not quoted:
                ends.append(i)
                state = "skip_ending"
            i += 1
        elif ch == " ":  # skip_ending
            i += 1
        else:
            state = "start"
    ends += [n] * (len(starts) - len(ends))
    return [text[s:e] for s, e in zip(starts, ends, strict=True)]


def _split_char(text: str, delim: str, limit: int) -> list[str]:
    """``separate_string_char_delim`` before its cleanup."""
    starts: list[int] = []
    ends: list[int] = []
    i, n, quoted, state = 0, len(text), False, "start"
    while i < n and len(starts) < limit:
        ch = text[i]
        if state == "start":
            starts.append(i)
            state = "find"
            continue
        if ch == "\\":
            i += 1
        elif ch == "'" and (quoted or "'" in text[i + 1:]):
            quoted = not quoted
        elif ch == delim and not quoted:
            ends.append(i)
            state = "start"
        i += 1
    ends += [n] * (len(starts) - len(ends))
    return [text[s:e] for s, e in zip(starts, ends, strict=True)]


def _cleanup(part: str, delim: str) -> str:
    """``cleanup_separated_string``: unquote, unescape, trim."""
    i, n = 0, len(part)
    while i < n and part[i] == " ":
        i += 1
    out: list[str] = []
    end = 0  # length of `out` that survives the trailing-space trim
    quoted = False
    while i < n:
        ch = part[i]
        if ch == "\\" and i + 1 < n:
            nxt = part[i + 1]
            if nxt in ("'", '"', "\\") or (delim and nxt == delim) or nxt in _ESCAPES:
                out.append(_ESCAPES.get(nxt, nxt))
                end = len(out)
                i += 2
                continue
        if ch == "'" and (quoted or "'" in part[i + 1:]):
            quoted = not quoted
            if quoted:
                end = len(out)
        else:
            out.append(ch)
            if ch != " " or quoted:
                end = len(out)
        i += 1
    return "".join(out[:end])
