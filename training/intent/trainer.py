"""The fine-tuning loop shared by every intent build (in-process and Ray Train workers).

Plain torch, no Ray: `fine_tune` trains a ``*ForSequenceClassification`` model with AdamW,
linear warm-up/decay, length-bucketed dynamic padding and early stopping on validation
accuracy, and leaves the best epoch's weights in the model. Under Ray Train the caller
passes the DDP-wrapped model and its shard of the rows (`Shard`); every worker scores the
whole (small) validation split itself, so all workers take the same early-stopping
decision without extra communication.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from training.intent.config import IntentTrainConfig

__all__ = [
    "FitResult",
    "IntentTrainConfig",
    "Shard",
    "TokenizedRows",
    "fine_tune",
    "predict_proba",
    "seed_everything",
    "tokenize",
]

log = logging.getLogger("callfleet.training.intent_trainer")

Progress = Callable[[str, float], None]


@dataclass
class TokenizedRows:
    """Token ids per row (unpadded) and label ids, ready for length-bucketed batching."""

    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Shard:
    """Which part of the training rows this process trains on (Ray Train: its rank)."""

    rank: int = 0
    world_size: int = 1


@dataclass
class FitResult:
    """Outcome of `fine_tune`: per-epoch history and which epoch's weights were kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def tokenize(tokenizer, texts: Sequence[str], labels: Sequence[int], max_length: int) -> TokenizedRows:
    if not texts:
        return TokenizedRows([], [])
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    return TokenizedRows([list(ids) for ids in encoded["input_ids"]], list(labels))


def _batches(rows: TokenizedRows, batch_size: int, rng: random.Random, shard: Shard) -> list[list[int]]:
    """Shuffled batches of similar length (less padding, same randomness per seed).

    Rows are shuffled, cut into pools of 50 batches, sorted by length inside a pool,
    batched, and the batch order shuffled. With several workers each takes every
    world_size-th batch; the count is made equal so DDP's all-reduce never waits forever.
    """
    order = list(range(len(rows)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(rows.input_ids[i]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    if shard.world_size > 1:
        per_worker = len(batches) // shard.world_size
        batches = batches[shard.rank :: shard.world_size][:per_worker]
    return batches


def _collate(tokenizer, rows: TokenizedRows, index: list[int]) -> dict[str, torch.Tensor]:
    batch = tokenizer.pad({"input_ids": [rows.input_ids[i] for i in index]}, return_tensors="pt")
    batch["labels"] = torch.tensor([rows.labels[i] for i in index])
    return batch


@torch.inference_mode()
def predict_proba(model, tokenizer, rows: TokenizedRows, batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities for every row, in row order (batches sorted by length)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows.input_ids[i]))
    out = np.zeros((len(rows), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [rows.input_ids[i] for i in index]}, return_tensors="pt")
        logits = model(**batch).logits.float()
        out[index] = torch.softmax(logits, dim=-1).numpy()
    model.train(was_training)
    return out


def fine_tune(
    model,
    tokenizer,
    train: TokenizedRows,
    validation: TokenizedRows | None,
    config: IntentTrainConfig,
    report: Progress | None = None,
    *,
    shard: Shard = Shard(),
    inner_model=None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train `model` in place; afterwards it holds the best validation epoch's weights.

    `model` may be a DDP wrapper; `inner_model` is then the wrapped module (its weights are
    what is scored and kept). Without validation rows every epoch runs and the last is kept.
    `on_epoch(metrics)` is called after each epoch (Ray Train reports through it).
    """
    report = report or (lambda stage, fraction: None)
    inner = inner_model if inner_model is not None else model
    started = time.perf_counter()
    rng = random.Random(config.seed)
    steps_per_epoch = len(_batches(train, config.batch_size, random.Random(0), shard))
    total = max(1, steps_per_epoch * config.epochs)
    warmup = max(1, int(total * config.warmup_fraction))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))),
    )
    result = FitResult()
    best_state = None
    stale = 0
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        running, seen = 0.0, 0
        for index in _batches(train, config.batch_size, rng, shard):
            out = model(**_collate(tokenizer, train, index))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            running += out.loss.item() * len(index)
            seen += len(index)
            step += 1
            report(f"training (epoch {epoch}/{config.epochs})", 0.9 * step / total)
        metrics = {"epoch": epoch, "train_loss": running / max(1, seen)}
        if validation is not None and len(validation):
            report(f"validating (epoch {epoch})", 0.9 * step / total)
            probs = predict_proba(inner, tokenizer, validation, config.eval_batch_size)
            accuracy = float(np.mean(probs.argmax(axis=1) == np.asarray(validation.labels)))
            metrics["val_accuracy"] = accuracy
            report(f"epoch {epoch}: val acc {accuracy:.4f}", 0.9 * step / total)
            if result.best_val_accuracy is None or accuracy > result.best_val_accuracy + 1e-9:
                result.best_val_accuracy, result.best_epoch, stale = accuracy, epoch, 0
                best_state = copy.deepcopy(inner.state_dict())
            else:
                stale += 1
        else:
            result.best_epoch = epoch
        result.history.append(metrics)
        log.info("epoch %s: %s", epoch, metrics)
        if on_epoch is not None:
            on_epoch(metrics)
        if stale >= config.patience and epoch < config.epochs:
            result.stopped_early = True
            break
    if best_state is not None:
        inner.load_state_dict(best_state)
    inner.eval()
    result.seconds = time.perf_counter() - started
    return result
