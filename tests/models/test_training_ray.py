"""`callfleet train intent --workers 1` runs the loop on Ray Train and publishes a version.

Real Ray (an in-process local instance on ports of its own, no dashboard) and real
MiniLM weights on a tiny BANKING77 subset, one epoch: the point is the plumbing
(TorchTrainer, gloo DDP, checkpoint back to the driver, registry commit), not accuracy.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.integration]


def test_ray_train_worker_builds_a_registry_version(shared_datasets: Path, tmp_path: Path) -> None:
    import ray

    from training.intent.build import IntentBuildOptions, train_intent
    from training.intent.config import IntentTrainConfig
    from training.models.registry import ModelRegistry

    rows = list(csv.DictReader(open(shared_datasets / "banking77" / "train.csv", encoding="utf-8")))
    keep = {"card_arrival", "exchange_rate", "top_up_failed"}
    taken: Counter[str] = Counter()
    data = tmp_path / "tiny.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        for row in rows:
            if row["category"] in keep and taken[row["category"]] < 20:
                taken[row["category"]] += 1
                writer.writerow(row)

    if ray.is_initialized():  # the session cluster's driver: this test runs its own
        ray.shutdown()

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        registry = ModelRegistry(tmp_path / "registry")
        config = IntentTrainConfig(epochs=1, batch_size=16, max_length=32, validation=0.15,
                                   holdout=0.15, cpu_threads=1)
        options = IntentBuildOptions(workers=1, storage_path=str(tmp_path / "ray_results"))
        info = train_intent(registry, data, config, options)
    finally:
        ray.shutdown()
    assert registry.current("intent") == info.version
    assert info.meta["training_config"]["workers"] == 1
    assert info.metrics["epochs_run"] == 1 and info.metrics["n_holdout"] == 9
    assert sorted(info.meta["label_map"].values()) == sorted(keep)
    assert (info.path / "model.safetensors").is_file()
