"""Export an intent version to ONNX and prove it computes what torch computes.

`export_intent_onnx(folder)` writes ``model.onnx`` beside the safetensors weights
(legacy TorchScript exporter, opset 17, dynamic batch and sequence axes), runs the same
padded batches through torch and onnxruntime and raises `OnnxMismatchError` when the
logits differ by more than `TOLERANCE`. The serving engine uses ``model.onnx`` when it
is present, so a version never ships an unchecked graph.

The example batch used for tracing is padded on purpose: traced with an all-ones
attention mask, transformers may drop the mask and the graph would ignore padding.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from training.models.loading import quiet_transformers

__all__ = ["ONNX_FILE", "TOLERANCE", "OnnxMismatchError", "export_intent_onnx"]

log = logging.getLogger("callfleet.training.onnx")

ONNX_FILE = "model.onnx"
TOLERANCE = 1e-4  # max abs difference of logits, torch vs onnxruntime (fp32)
OPSET = 17
_DEFAULT_SAMPLES = [
    "I still have not received my new card",
    "what is the exchange rate",
    "hi",
    "can you tell me why my top up failed twice this morning even though there was money",
]


class OnnxMismatchError(RuntimeError):
    """The exported graph does not reproduce torch's outputs within `TOLERANCE`."""


def export_intent_onnx(
    folder: str | os.PathLike, sample_texts: list[str] | None = None, max_length: int = 64
) -> dict[str, Any]:
    """Write ``folder/model.onnx`` from the transformers model in `folder`; return metrics
    (``onnx_max_abs_diff``, ``onnx_opset``, ``onnx_export_seconds``) for meta.json."""
    import torch  # heavy: loads torch


    folder = Path(folder)
    started = time.perf_counter()
    with quiet_transformers():
        from transformers import AutoTokenizer  # after the offline switches above

        from training.models.intent_head import load_classifier  # after the offline switches above

        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = load_classifier(folder)
    model.eval()
    names = _input_names(tokenizer)
    example = tokenizer(["hi", "hello there, how are you today"], padding=True, return_tensors="pt")

    class LogitsOnly(torch.nn.Module):
        """Positional inputs in `names` order, logits out (what the engine feeds/reads)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(**dict(zip(names, tensors, strict=True))).logits

    target = folder / ONNX_FILE
    staged = folder / f".{ONNX_FILE}.partial"  # renamed into place only once verified
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
            torch.onnx.export(
                LogitsOnly(model), tuple(example[n] for n in names), str(staged), dynamo=False,
                input_names=names, output_names=["logits"], dynamic_axes=axes, opset_version=OPSET,
            )
        model.eval()  # the exporter may leave modules in training mode
        texts = sample_texts or _DEFAULT_SAMPLES
        diff = _max_abs_diff(model, tokenizer, staged, names, texts, max_length)
        if not diff <= TOLERANCE:
            raise OnnxMismatchError(
                f"ONNX export of {folder} differs from torch by {diff:.2e} (tolerance "
                f"{TOLERANCE:.0e}); model.onnx was not written"
            )
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    log.info("exported %s (max abs diff %.2e) in %.1f s", target, diff, seconds)
    return {
        "onnx_max_abs_diff": float(f"{diff:.3g}"),
        "onnx_opset": OPSET,
        "onnx_export_seconds": round(seconds, 1),
    }


def _input_names(tokenizer) -> list[str]:
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]


def _max_abs_diff(model, tokenizer, onnx_path: Path, names: list[str], texts: list[str], max_length: int
                  ) -> float:
    """Largest |torch - onnxruntime| over single rows and padded batches of `texts`."""
    import onnxruntime as ort  # heavy: loads onnxruntime
    import torch  # heavy: loads torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batches = [texts[:1], texts[:8], texts]
    worst = 0.0
    for batch in batches:
        enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        got = session.run(["logits"], {n: enc[n].astype(np.int64) for n in names})[0]
        with torch.no_grad():
            want = model(**{n: torch.from_numpy(enc[n].astype(np.int64)) for n in names}).logits.numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst
