"""The scripts a process serves, swapped only when a new version is valid.

Loading is validate-then-swap: a new version is parsed and checked completely before it
replaces the one in service; a broken one is rejected with its precise problems and the
previous version keeps serving. Calls already running keep the exact version they started
with (`get(name, version=...)`), as long as it is among the last `keep_versions` loaded,
so an edit never changes a script under a caller's feet.

`refresh` re-reads what changed since the last attempt: edited files, files new in a folder
given to `load_dir` (a script broken at start is one like any other: fixing it brings it
in), and, on every call, the files whose last attempt failed (the fix may be in the file
they depend on, e.g. the intents); a failure that stays the same is not reported again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from bots.script.loader import Script, load_script
from bots.script.problems import ScriptError, ScriptProblem
from bots.script.settings import BotScriptSettings

__all__ = ["BotScriptSettings", "LoadReport", "ScriptLibrary", "UnknownScript"]

log = logging.getLogger("callfleet.bots.library")

_Stamp = tuple[int, int]  # (mtime in ns, size): what tells an edit on disk


class UnknownScript(LookupError):
    """No script of that name (or that version) is loaded."""


@dataclass(frozen=True)
class LoadReport:
    """What one (re)load did: `swapped` False means the previous version still serves."""

    name: str | None
    file: str
    swapped: bool
    version: str | None = None
    previous: str | None = None
    problems: list[ScriptProblem] = field(default_factory=list)


class ScriptLibrary:
    """Scripts by bot name; thread-safe; old versions kept (bounded) for running calls."""

    def __init__(self, functions: frozenset[str] | set[str] | None = None,
                 keep_versions: int = 5) -> None:
        self.functions = frozenset(functions) if functions is not None else None
        self.keep_versions = keep_versions
        self._lock = threading.Lock()
        self._current: dict[str, Script] = {}
        self._versions: dict[str, OrderedDict[str, Script]] = {}
        self._files: dict[str, tuple[str, float]] = {}  # file -> (bot name, mtime), last good load
        self._seen: dict[str, _Stamp | None] = {}  # file -> stamp at last attempt (None: absent)
        self._folders: list[Path] = []  # folders given to load_dir, scanned for new files
        self._refreshing = threading.Lock()  # one refresh at a time
        self.last_errors: dict[str, list[ScriptProblem]] = {}  # file -> problems of last failure

    def load(self, path: str | os.PathLike) -> LoadReport:
        """Validate `path` and make it the serving version of its bot; on any problem keep
        the previous version and report why (never raises for a bad script)."""
        report = self._load(str(Path(path)))
        assert report is not None
        return report

    def _load(self, file: str, retry: bool = False) -> LoadReport | None:
        """`load`; with `retry`, None (and no log) when it fails exactly as last time."""
        stamp = _stamp(file)  # before reading: an edit made while reading is seen next time
        mtime = stamp[0] / 1e9 if stamp else 0.0
        try:
            script = load_script(file, self.functions)
        except ScriptError as exc:
            with self._lock:
                same = retry and self.last_errors.get(file) == exc.problems
                self.last_errors[file] = exc.problems
                self._seen[file] = stamp
                known = self._files.get(file)
                name = known[0] if known else None
                previous = self._current[name].sha if name in self._current else None
            if same:
                return None
            log.warning("bot script %s rejected (%d problem(s)); %s", file, len(exc.errors),
                        f"version {previous} keeps serving" if previous else "nothing loaded")
            return LoadReport(name, file, False, None, previous, exc.problems)
        with self._lock:
            previous_script = self._current.get(script.name)
            self._current[script.name] = script
            versions = self._versions.setdefault(script.name, OrderedDict())
            versions[script.sha] = script
            versions.move_to_end(script.sha)
            while len(versions) > self.keep_versions:
                versions.popitem(last=False)
            self._files[file] = (script.name, mtime)
            self._seen[file] = stamp
            self.last_errors.pop(file, None)
        previous = previous_script.sha if previous_script else None
        if previous != script.sha:
            log.info("bot script %s version %s now serving (was %s)", script.name, script.sha,
                     previous or "none")
        return LoadReport(script.name, file, True, script.sha, previous, list(script.warnings))

    def load_dir(self, folder: str | os.PathLike) -> list[LoadReport]:
        """Load every script in `folder`; `refresh` also picks up files added to it later."""
        with self._lock:
            if Path(folder) not in self._folders:
                self._folders.append(Path(folder))
        return [self.load(p) for p in sorted(Path(folder).glob("*.yaml"))]

    def refresh(self) -> list[LoadReport]:
        """Reload the files that changed on disk or are new in a loaded folder, and retry
        the ones whose last load failed; reports what changed (a failure repeated exactly
        is not reported again). A deleted file's last good version keeps serving."""
        if not self._refreshing.acquire(blocking=False):
            return []  # another refresh is at it
        try:
            with self._lock:
                seen = dict(self._seen)
                folders = list(self._folders)
                failed = set(self.last_errors)
            files = set(seen)
            for folder in folders:
                files.update(str(p) for p in folder.glob("*.yaml"))
            reports = []
            for file in sorted(files):
                stamp = _stamp(file)
                if stamp is None:
                    if file in seen and seen[file] is not None:
                        with self._lock:  # gone: nothing on disk is refused any more
                            self._seen[file] = None
                            self.last_errors.pop(file, None)
                    continue
                if file not in seen or stamp != seen[file]:
                    reports.append(self._load(file))
                elif file in failed and (report := self._load(file, retry=True)) is not None:
                    reports.append(report)
            return [r for r in reports if r is not None]
        finally:
            self._refreshing.release()

    def get(self, name: str, version: str | None = None) -> Script:
        """The serving script, or a specific version a running call started on (falls back
        to the serving one when that version has been evicted)."""
        with self._lock:
            if name not in self._current:
                raise UnknownScript(f"no bot script named '{name}' is loaded "
                                    f"(loaded: {sorted(self._current) or 'none'})")
            if version is not None:
                found = self._versions.get(name, {}).get(version)
                if found is not None:
                    return found
                log.warning("bot %s version %s is no longer kept; using the serving version",
                            name, version)
            return self._current[name]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._current)


def _stamp(file: str) -> _Stamp | None:
    try:
        st = Path(file).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
