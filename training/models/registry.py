"""A file-system model registry: versioned model folders with metadata and a promoted one.

Layout::

    root/<kind>/v0001/            model files + meta.json
    root/<kind>/v0002/
    root/<kind>/CURRENT           text file naming the promoted version ("v0002")
    root/<kind>/.staging/v0003/   a version being written (invisible to readers)

A build opens `stage(kind)`, writes its files into the staged folder and calls the
stage's `commit(meta)`, which writes ``meta.json``, renames the folder into place in one
`os.rename` and promotes it when asked (or when it is the kind's first); a build that
fails inside the block has its folder removed. (`new_version_dir`, `commit` and
`discard` are the same steps one by one.) Readers only ever list ``v*`` folders that contain ``meta.json``, so a
half-written or crashed build is never visible. Creating the staging folder reserves the
version number (``mkdir`` is atomic), so two concurrent builds never get the same one; a
crashed build leaves a gap in the numbering, never a broken version. `CURRENT` is
replaced atomically (temp file + `os.replace`), so a serving replica that reads it while
someone promotes sees either the old or the new name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.models.remote import RemoteRegistryError, RemoteStore

__all__ = [
    "BUILD_COMMANDS",
    "REQUIRED_META_KEYS",
    "ModelNotFoundError",
    "ModelRegistry",
    "StagedVersion",
    "VersionInfo",
    "sha256_file",
]

log = logging.getLogger("callfleet.training.models.registry")

META_FILE = "meta.json"
CURRENT_FILE = "CURRENT"
STAGING_DIR = ".staging"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_-]*$")

#: keys a build must supply to `commit`; the registry adds version, kind and created_at.
REQUIRED_META_KEYS = ("base_model", "label_map", "metrics", "training_config", "data_sha256")

#: how to build the default model of a kind (quoted in ModelNotFoundError messages).
BUILD_COMMANDS = {
    "intent": "python -m training.intent.default --registry {root}",
    "emotion": "python -m training.emotion.default --registry {root}",
    "conversion": "callfleet train conversion --data LEADS.csv --out {root}",
}


class ModelNotFoundError(LookupError):
    """The asked-for model version does not exist (or nothing is promoted yet)."""


@dataclass(frozen=True)
class VersionInfo:
    """One committed model version: its folder, its name and its ``meta.json``."""

    path: Path
    version: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", self.path.parent.name))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics", {}))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (recorded in meta.json so a version names its training data)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class StagedVersion:
    """A version being built: write its files into `path`, then `commit` it."""

    def __init__(self, registry: ModelRegistry, kind: str, version: str, path: Path) -> None:
        self.registry = registry
        self.kind = kind
        self.version = version
        self.path = path
        self.info: VersionInfo | None = None

    def commit(self, meta: dict[str, Any], *, promote: bool = False,
               promote_if_first: bool = True) -> VersionInfo:
        """Publish the staged folder with `meta` (see `ModelRegistry.commit`); promote it
        when `promote`, or when `promote_if_first` and no version of the kind is current."""
        self.info = self.registry.commit(self.kind, self.version, meta)
        if promote or (promote_if_first and self.registry.current(self.kind) is None):
            self.registry.promote(self.kind, self.version)
        return self.info


class ModelRegistry:
    """Versioned model folders under `root`, one sub-folder per model kind.

    With `remote` (an fsspec URL, training/models/remote.py) the registry lives on object
    storage and `root` is this node's cache of it: what is promoted and which versions
    exist are read there, a version is downloaded once when first used, and a commit or
    promotion is written through to it."""

    def __init__(self, root: str | os.PathLike, remote: str | None = None):
        self.root = Path(root).expanduser()
        self.remote = RemoteStore(remote) if remote else None

    def __repr__(self) -> str:
        where = f", remote={self.remote.url!r}" if self.remote else ""
        return f"ModelRegistry({str(self.root)!r}{where})"

    # -- writing -----------------------------------------------------------------------

    def new_version_dir(self, kind: str) -> tuple[str, Path]:
        """Reserve the next version number and return it with an empty staging folder.

        Write the model files into the folder, then call `commit(kind, version, meta)`;
        call `discard(kind, version)` if the build fails.
        """
        staging = self._kind_dir(kind) / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        number = self._highest_number(kind) + 1
        while True:
            version = f"v{number:04d}"
            try:
                (staging / version).mkdir()
            except FileExistsError:  # another build reserved it first
                number += 1
                continue
            if (self._kind_dir(kind) / version).exists():
                (staging / version).rmdir()
                number += 1
                continue
            return version, staging / version

    @contextmanager
    def stage(self, kind: str) -> Iterator[StagedVersion]:
        """Reserve the next version of `kind` for a build inside the ``with`` block.

        The block writes its files into ``staged.path`` and ends with
        ``staged.commit(meta, promote=...)``. If it raises, or ends without committing,
        the staged folder is discarded, so a failed build leaves no trace but a gap in the
        numbering.
        """
        version, path = self.new_version_dir(kind)
        staged = StagedVersion(self, kind, version, path)
        try:
            yield staged
        finally:
            if staged.info is None:
                self.discard(kind, version)

    def commit(self, kind: str, version: str, meta: dict[str, Any]) -> VersionInfo:
        """Write ``meta.json`` into the staged folder and publish it as `version`."""
        missing = [key for key in REQUIRED_META_KEYS if key not in meta]
        if missing:
            raise ValueError(f"meta for {kind}/{version} lacks {', '.join(missing)}")
        staged = self._kind_dir(kind) / STAGING_DIR / version
        if not staged.is_dir():
            raise ModelNotFoundError(f"no staged version {kind}/{version} to commit")
        full = {
            **meta,
            "version": version,
            "kind": kind,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        _write_atomic(staged / META_FILE, json.dumps(full, indent=2) + "\n")
        final = self._kind_dir(kind) / version
        os.rename(staged, final)
        log.info("committed model %s/%s", kind, version)
        if self.remote is not None:
            self.remote.upload(final, kind, version)
        return VersionInfo(path=final, version=version, meta=full)

    def update_meta(self, kind: str, version: str, metrics: dict[str, Any]) -> VersionInfo:
        """Merge `metrics` into a committed version's ``meta.json`` metrics (atomic rewrite).

        For facts learned after a build that do not change the model's behaviour, such as
        an ONNX export's measured difference from torch. Weights are never rewritten.
        """
        info = self.get(kind, version)
        meta = {**info.meta, "metrics": {**info.metrics, **metrics}}
        text = json.dumps(meta, indent=2) + "\n"
        _write_atomic(info.path / META_FILE, text)
        if self.remote is not None:
            self.remote.write_text(text, kind, info.version, META_FILE)
        return VersionInfo(path=info.path, version=info.version, meta=meta)

    def discard(self, kind: str, version: str) -> None:
        """Delete a staged (uncommitted) version; committed versions are left alone."""
        shutil.rmtree(self._kind_dir(kind) / STAGING_DIR / version, ignore_errors=True)

    def promote(self, kind: str, version: str) -> VersionInfo:
        """Make `version` the one `get(kind)` returns; atomic for concurrent readers."""
        info = self.get(kind, version)
        _write_atomic(self._kind_dir(kind) / CURRENT_FILE, info.version + "\n")
        if self.remote is not None:
            self.remote.write_text(info.version + "\n", kind, CURRENT_FILE)
        log.info("promoted model %s/%s", kind, info.version)
        return info

    # -- reading -----------------------------------------------------------------------

    def list(self, kind: str) -> list[VersionInfo]:
        """Committed versions of `kind`, oldest first."""
        kind_dir = self._kind_dir(kind)
        if self.remote is not None:
            for name in self._remote_call(self.remote.versions, kind) or []:
                self._cached(kind, name)
        if not kind_dir.is_dir():
            return []
        found = []
        for child in kind_dir.iterdir():
            match = _VERSION_RE.match(child.name)
            if match and (child / META_FILE).is_file():
                found.append((int(match.group(1)), child))
        return [self._load(child) for _, child in sorted(found)]

    def current(self, kind: str) -> str | None:
        """Name of the promoted version of `kind`, or None when nothing is promoted."""
        if self.remote is not None:
            self._kind_dir(kind)  # validates the kind before it names a remote path
            text = self._remote_call(self.remote.read_text, kind, CURRENT_FILE)
            if text is not None or self._remote_ok:
                return (text or "").strip() or None
        try:
            name = (self._kind_dir(kind) / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def get(self, kind: str, version: str = "current") -> VersionInfo:
        """A committed version; "current" resolves the promoted one.

        Raises ModelNotFoundError naming the available versions and the build command.
        """
        name = self.current(kind) if version == "current" else version
        if name is not None and _VERSION_RE.match(name):
            folder = self._kind_dir(kind) / name
            if self.remote is not None:
                self._cached(kind, name)
            if (folder / META_FILE).is_file():
                return self._load(folder)
        raise ModelNotFoundError(self._not_found_message(kind, version, name))

    # -- internals ---------------------------------------------------------------------

    def _kind_dir(self, kind: str) -> Path:
        if not _KIND_RE.match(kind):
            raise ValueError(f"bad model kind {kind!r}: use lowercase letters, digits, - or _")
        return self.root / kind

    _remote_ok = True  # whether the last remote call answered (else: the local cache)

    def _remote_call(self, fn, *args):
        """A read from object storage; None (and the local cache serves) when it fails."""
        try:
            out = fn(*args)
            self._remote_ok = True
            return out
        except (OSError, RemoteRegistryError) as exc:
            self._remote_ok = False
            log.warning("model registry %s unreachable (%s); using the local copy in %s",
                        self.remote.url, type(exc).__name__, self.root)
            return None

    def _cached(self, kind: str, name: str) -> None:
        """Download a remote version into the local cache unless it is already there."""
        folder = self._kind_dir(kind) / name
        if not (folder / META_FILE).is_file():
            self._remote_call(self.remote.download, kind, name, folder)

    def _highest_number(self, kind: str) -> int:
        numbers = [0]
        if self.remote is not None:  # versions other nodes committed
            numbers += [int(v[1:]) for v in self._remote_call(self.remote.versions, kind) or []
                        if _VERSION_RE.match(v)]
        kind_dir = self._kind_dir(kind)
        for folder in (kind_dir, kind_dir / STAGING_DIR):
            if folder.is_dir():
                for child in folder.iterdir():
                    match = _VERSION_RE.match(child.name)
                    if match:
                        numbers.append(int(match.group(1)))
        return max(numbers)

    def _load(self, folder: Path) -> VersionInfo:
        meta = json.loads((folder / META_FILE).read_text())
        return VersionInfo(path=folder, version=folder.name, meta=meta)

    def _not_found_message(self, kind: str, asked: str, resolved: str | None) -> str:
        available = [info.version for info in self.list(kind)]
        if asked == "current" and resolved is None:
            head = f"no {kind} model is promoted in {self.root}"
        elif asked == "current":
            head = f"{kind} CURRENT names {resolved!r}, which is not in {self.root}"
        else:
            head = f"{kind} model version {asked!r} is not in {self.root}"
        listing = ", ".join(available) if available else "none"
        command = BUILD_COMMANDS.get(kind, "a training script for this kind").format(root=self.root)
        hint = f"build one with: {command}"
        if available:
            hint += f" (or promote one with ModelRegistry.promote({kind!r}, {available[-1]!r}))"
        return f"{head}; available versions: {listing}; {hint}"


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old or the new content, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; other users (replicas) must read it
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
