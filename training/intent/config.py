"""Hyper-parameters of an intent build (pydantic, torch-free so the CLI can read defaults
without importing torch). Mountable as a settings section (``training.intent``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IntentTrainConfig"]


class IntentTrainConfig(BaseModel):
    """Hyper-parameters of `callfleet train intent` (defaults reach the BANKING77/CLINC150
    targets on a 2-core CPU in minutes; see docs/training.md)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, ge=1, le=100, description="maximum epochs (early stopping may end sooner)")
    lr: float = Field(2e-4, gt=0, le=1e-2, description="peak AdamW learning rate")
    batch_size: int = Field(32, ge=1, le=1024, description="rows per optimiser step (per worker)")
    max_length: int = Field(64, ge=8, le=512, description="tokens per utterance (longer ones are cut)")
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay")
    warmup_fraction: float = Field(0.06, ge=0, le=0.5, description="share of steps warming up")
    patience: int = Field(5, ge=1, le=20, description="epochs without validation gain before stopping")
    validation: float = Field(0.08, ge=0, lt=0.5, description="share of rows carved for validation")
    holdout: float | None = Field(
        None, ge=0, lt=0.5,
        description="share carved as held-out test split; None = 0.1 unless the file has its own",
    )
    oos_max_in_scope_rejection: float = Field(
        0.02, ge=0, le=1,
        description="OOS threshold: at most this share of in-scope validation rows may be flagged",
    )
    pooling: Literal["mean", "cls"] = Field(
        "mean", description="classification head: masked mean of the encoder's last layer "
        "(how MiniLM was trained as a sentence encoder) or the [CLS] token through the pooler",
    )
    seed: int = Field(0, description="seeds splits, initialisation, shuffling and dropout")
    cpu_threads: int = Field(2, ge=1, le=256, description="torch threads (per worker)")
    eval_batch_size: int = Field(128, ge=1, le=4096, description="rows per inference batch")
