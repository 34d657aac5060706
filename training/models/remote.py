"""The model registry on object storage, through fsspec (``s3://bucket/prefix``, ``gs://``,
``az://``, ``file://`` …), for clusters whose nodes share no disk.

The layout is the local registry's (``<kind>/v0001/… meta.json``, ``<kind>/CURRENT``).
A version folder never changes once written (meta.json is uploaded last, so a reader that
sees meta.json sees the whole version), which makes each node's local registry folder a
cache that never needs invalidating: only ``CURRENT`` and ``meta.json`` (metrics added
after the build) are read again. Credentials and endpoints come from the usual
environment of each file system (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL for an S3-compatible server).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import fsspec

log = logging.getLogger("callfleet.training.models.remote")

META_FILE = "meta.json"
CURRENT_FILE = "CURRENT"


class RemoteRegistryError(RuntimeError):
    """Object storage could not be read or written (the message names the URL, never
    credentials)."""


class RemoteStore:
    """Files of one registry on object storage."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise RemoteRegistryError(f"cannot open model registry {self.url}: {exc}") from None
        self.root = self.root.rstrip("/")

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def read_text(self, *parts: str) -> str | None:
        self.fs.invalidate_cache()  # another node may have written it since
        try:
            with self.fs.open(self._path(*parts), "r") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except Exception as exc:  # each file system has its own errors (botocore's, …)
            raise self._error("read", exc) from None

    def _error(self, what: str, exc: Exception) -> RemoteRegistryError:
        return RemoteRegistryError(f"could not {what} model registry {self.url}: "
                                   f"{type(exc).__name__}")

    def write_text(self, text: str, *parts: str) -> None:
        path = self._path(*parts)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # a no-op on object stores
        with self.fs.open(path, "w") as fh:
            fh.write(text)

    def versions(self, kind: str) -> list[str]:
        """Committed versions of `kind` (folders holding meta.json)."""
        self.fs.invalidate_cache()
        try:
            found = self.fs.glob(self._path(kind, "v*", META_FILE))
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self._error("list", exc) from None
        return sorted(p.rstrip("/").split("/")[-2] for p in found)

    def download(self, kind: str, version: str, dest: Path) -> None:
        """Copy a committed version into `dest` (written beside it, then renamed: a
        crashed download leaves no half folder)."""
        source = self._path(kind, version)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest.parent))
        try:
            try:
                for path in self.fs.find(source):
                    target = tmp / path[len(source):].lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(path, str(target))
            except OSError:
                raise
            except Exception as exc:
                raise self._error("download from", exc) from None
            if not (tmp / META_FILE).is_file():
                raise RemoteRegistryError(f"{self.url}/{kind}/{version} has no {META_FILE}")
            try:
                os.rename(tmp, dest)
            except OSError:  # another process on this node got it first
                if not (dest / META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def upload(self, folder: Path, kind: str, version: str) -> None:
        """Copy a committed local version up, meta.json last."""
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == META_FILE)
        try:
            for path in files:
                target = self._path(kind, version, path.relative_to(folder).as_posix())
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), target)
        except Exception as exc:
            raise RemoteRegistryError(
                f"model {kind}/{version} is committed in {folder.parent.parent} but could "
                f"not be uploaded to {self.url} ({type(exc).__name__}); other nodes cannot "
                "see it until it is") from None
        log.info("uploaded model %s/%s to %s", kind, version, self.url)


def push_registry(root: Path, url: str, kinds: list[str] | None = None,
                  progress=None) -> list[tuple[str, str]]:
    """Copy a local registry's committed versions that the store lacks, then its CURRENT
    pointers (after the versions they name); returns the (kind, version) pairs copied."""
    store = RemoteStore(url)
    copied = []
    for kind_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        kind = kind_dir.name
        if kind.startswith(".") or (kinds and kind not in kinds):
            continue
        there = set(store.versions(kind))
        for folder in sorted(kind_dir.glob("v*")):
            if (folder / META_FILE).is_file() and folder.name not in there:
                if progress:
                    progress(f"{kind}/{folder.name}")
                store.upload(folder, kind, folder.name)
                copied.append((kind, folder.name))
        current = kind_dir / CURRENT_FILE
        if current.is_file():
            store.write_text(current.read_text(), kind, CURRENT_FILE)
    return copied
