"""Bot scripts deployed through Redis, so that every gateway replica on every node serves
them without a restart and without a shared disk.

`callfleet bots deploy FILE…` validates the scripts where it runs (a broken one is refused
with its file:line problems and nothing is published), then publishes a bundle: each
script and the intent file it names, under paths that keep their relative layout
(``scripts/shop.yaml`` naming ``../data/intents.yaml`` travels as ``data/intents.yaml``).
One transaction writes the files and bumps a generation number.

Each gateway replica watches the generation, writes a new bundle to a folder of its own
node and loads it through its script library, which validates again and keeps the
previous version serving on any problem. It then acknowledges what it serves (bot →
version) under a key that expires when the replica stops renewing it, which is how the
deploy command knows the scripts are live everywhere.

Keys: ``cf:bots:files`` (hash: bundle path → text), ``cf:bots:gen`` (int),
``cf:bots:deployed`` (hash: bot → JSON {version, file, at}),
``cf:bots:replica:<id>`` (JSON {gen, bots, rejected, node, media}, with a TTL: also how
operators and tests see which gateway replicas run where).
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

FILES_KEY = "cf:bots:files"
GEN_KEY = "cf:bots:gen"
DEPLOYED_KEY = "cf:bots:deployed"
REPLICA_PREFIX = "cf:bots:replica:"
MAX_BUNDLE_BYTES = 4 * 1024 * 1024  # the whole published library; scripts are small


class BundleError(ValueError):
    """A script that cannot be published as given (the message says which and why)."""


@dataclass
class ScriptBundle:
    """Files to publish (bundle path → text) and the bots they make serve (bot → version)."""

    files: dict[str, str] = field(default_factory=dict)
    bots: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, file: str | os.PathLike, bot: str, version: str,
            intents_file: str | os.PathLike | None) -> None:
        script = Path(file).resolve()
        key = f"scripts/{script.name}"
        self._put(key, script)
        if intents_file is not None:
            rel = os.path.relpath(Path(intents_file).resolve(), script.parent)
            dep = posixpath.normpath(posixpath.join("scripts", Path(rel).as_posix()))
            if dep.startswith("../") or dep == "..":
                raise BundleError(
                    f"{file}: its intents file {rel} lies more than one folder above the "
                    "script; keep it next to the script or in a sibling folder")
            self._put(dep, Path(intents_file))
        self.bots[bot] = {"version": version, "file": key}

    def _put(self, key: str, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        if key in self.files and self.files[key] != text:
            raise BundleError(f"two different files would be published as {key}")
        self.files[key] = text

    def size(self) -> int:
        return sum(len(t.encode()) for t in self.files.values())


class PublishedScripts:
    """The deployed scripts in Redis: publish (the deploy command) and what replicas
    acknowledge. Takes a synchronous redis client (decode_responses=True)."""

    def __init__(self, redis_client: Any) -> None:
        self.redis = redis_client

    def publish(self, bundle: ScriptBundle) -> int:
        """Write the bundle and bump the generation in one transaction; returns it."""
        if bundle.size() > MAX_BUNDLE_BYTES:
            raise BundleError(f"bundle of {bundle.size()} bytes exceeds {MAX_BUNDLE_BYTES}")
        now = time.time()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(FILES_KEY, mapping=bundle.files)
        pipe.hset(DEPLOYED_KEY, mapping={
            bot: json.dumps({**info, "at": now}) for bot, info in bundle.bots.items()})
        pipe.incr(GEN_KEY)
        return int(pipe.execute()[-1])

    def deployed(self) -> dict[str, dict[str, Any]]:
        return {bot: json.loads(v) for bot, v in self.redis.hgetall(DEPLOYED_KEY).items()}

    def replicas(self) -> dict[str, dict[str, Any]]:
        """The gateway replicas alive now (their acknowledgement has not expired)."""
        out = {}
        for key in self.redis.scan_iter(match=REPLICA_PREFIX + "*", count=100):
            raw = self.redis.get(key)
            if raw:
                out[key[len(REPLICA_PREFIX):]] = json.loads(raw)
        return out


class ReplicaScripts:
    """A gateway replica's side, on an asyncio redis client (decode_responses=True)."""

    def __init__(self, redis_client: Any, replica_id: str, ttl_s: float = 15.0) -> None:
        self.redis = redis_client
        self.replica_id = replica_id
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, replica_id: str, ttl_s: float = 15.0) -> ReplicaScripts:
        return cls(aioredis.from_url(url, decode_responses=True, socket_timeout=2,
                                     socket_connect_timeout=2), replica_id, ttl_s)

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def generation(self) -> int:
        return int(await self.redis.get(GEN_KEY) or 0)

    async def bundle(self) -> tuple[int, dict[str, str]]:
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(GEN_KEY)
        pipe.hgetall(FILES_KEY)
        gen, files = await pipe.execute()
        return int(gen or 0), files

    async def acknowledge(self, gen: int, bots: dict[str, str], rejected: dict[str, int],
                          about: dict[str, Any] | None = None) -> None:
        """What this replica serves; `about` adds where it runs (node, media listener)."""
        doc = {**(about or {}), "gen": gen, "bots": bots, "rejected": rejected}
        await self.redis.set(REPLICA_PREFIX + self.replica_id, json.dumps(doc),
                             px=int(self.ttl_s * 1000))

    async def forget(self) -> None:
        await self.redis.delete(REPLICA_PREFIX + self.replica_id)


def materialise(files: dict[str, str], folder: Path) -> list[Path]:
    """Write the bundle under `folder` (each file replaced atomically); return the script
    files in it. Paths that would leave the folder are skipped."""
    root = folder.resolve()
    scripts = []
    for key, text in sorted(files.items()):
        path = (root / key).resolve()
        if root not in path.parents:
            continue  # never written by `publish`: a hand-made key, refused here
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".publish-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
        if key.startswith("scripts/") and path.suffix == ".yaml":
            scripts.append(path)
    return scripts
