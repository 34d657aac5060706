"""What is wrong with a script, and where: the vocabulary the loader, checker and CLI share.

A script is written by people who are not programmers, so every problem names the file,
the line (and column where it helps), what is wrong, and what was expected instead.
Problems are collected, never raised one by one: `callfleet bot check` lists them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["ScriptError", "ScriptProblem"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class ScriptProblem:
    """One finding. `line`/`column` are 1-based; 0 means unknown (e.g. unreadable file)."""

    file: str
    line: int
    column: int
    message: str
    expected: str = ""
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        text = f"{where}: {self.severity}: {self.message}"
        return f"{text} (expected {self.expected})" if self.expected else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScriptError(ValueError):
    """A script that cannot be used; `problems` lists every error (and warning) found."""

    def __init__(self, problems: list[ScriptProblem]) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        shown = errors or self.problems
        head = f"{len(errors)} problem(s) in bot script" if errors else "bot script rejected"
        body = "\n".join(f"  {p}" for p in shown)
        super().__init__(f"{head}:\n{body}")

    @property
    def errors(self) -> list[ScriptProblem]:
        return [p for p in self.problems if p.severity == "error"]
