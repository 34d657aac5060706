"""Dense sentence embeddings (MiniLM) and their on-disk cache.

`SentenceEncoder` is the shared MiniLM encoder of `training.models.encoder` (texts to
L2-normalised mean-pooled vectors, so a dot product is the cosine similarity); torch and
transformers load only when an encoder is built: BM25-only use never pays for them.

`EmbeddingCache` keeps the passage embeddings in ``<index_dir>/index.npz`` under a key
that hashes the encoder's identity and every passage text: any change to the corpus or
the model gives a new key, and the embeddings are rebuilt. Writes are atomic (temp file +
rename), so a crash mid-write leaves the old cache, never a torn one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bots.kb.articles import KnowledgeBaseError
from training.models import encoder as models_encoder

__all__ = ["EmbeddingCache", "EncoderUnavailableError", "SentenceEncoder", "cache_key"]

log = logging.getLogger("callfleet.bots.kb")

class EncoderUnavailableError(KnowledgeBaseError):
    """The sentence encoder cannot be loaded (torch/transformers or the weights missing)."""


class SentenceEncoder(models_encoder.SentenceEncoder):
    """The shared MiniLM encoder (`training.models.encoder`), failing with the knowledge
    base's own error so a search can fall back to BM25."""

    def __init__(self, model_dir: Path | str | None = None, *, cpu_threads: int = 2,
                 max_tokens: int = 256, batch_size: int = 32):
        try:
            super().__init__(model_dir, max_length=max_tokens, batch_size=batch_size,
                             cpu_threads=cpu_threads)
        except models_encoder.EncoderUnavailableError as exc:
            raise EncoderUnavailableError(f"{exc}; install it or set kb.mode: bm25") from None


def cache_key(fingerprint: str, texts: Sequence[str]) -> str:
    """sha256 over the encoder's identity and every passage text, in order."""
    digest = hashlib.sha256(fingerprint.encode())
    for text in texts:
        digest.update(b"\x00" + text.encode())
    return digest.hexdigest()


class EmbeddingCache:
    """One ``index.npz`` (embeddings + key) in `folder`; stale or unreadable = a miss."""

    def __init__(self, folder: Path | str):
        self.path = Path(folder) / "index.npz"

    def load(self, key: str) -> np.ndarray | None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["key"]) != key:
                    log.info("knowledge-base index %s is stale; rebuilding", self.path)
                    return None
                return np.asarray(data["embeddings"], dtype=np.float32)
        except FileNotFoundError:
            return None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            log.warning("ignoring unreadable knowledge-base index %s (%s)", self.path, exc)
            return None

    def save(self, key: str, embeddings: np.ndarray) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".npz", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, key=np.array(key), embeddings=embeddings.astype(np.float32))
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the index is not secret
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
