"""Intent benchmarks: BANKING77 held-out accuracy and CLINC150 val in-scope accuracy / OOS
recall, training time, and single-sentence latency p50 for torch vs ONNX Runtime.

    python benchmarks/intent_benchmark.py --dataset banking77 --train      # train, then measure
    python benchmarks/intent_benchmark.py --dataset clinc150 --version v0002
    python benchmarks/intent_benchmark.py --dataset banking77 --version v0001 --threads 1 2

Versions live in ``--registry`` (default ``var/registry-bench``). Without ``--train`` and
``--version`` the newest version trained on the dataset's file is used. BANKING77 ships only
train.csv, so its figure is the held-out split carved at training time (10 %, seed 0);
CLINC150's is its ``val`` + ``oos_val`` split. Prints one human line per figure and, last,
one JSON object. Data: ../shared/datasets (BANKING77: PolyAI, CC BY 4.0; CLINC150: clinc/oos-eval,
CC BY 3.0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training.models.registry import ModelRegistry  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {
    "banking77": (SHARED / "banking77" / "train.csv", "holdout"),
    "clinc150": (SHARED / "clinc150" / "clinc150_train_val.json", "val"),
}
SENTENCES = [
    "I still have not received my new card",
    "why was I charged a fee for my transfer",
    "what's the weather like in paris",
    "can you set an alarm for seven tomorrow",
    "my top up failed twice",
    "how do I change my pin",
    "play some jazz please",
    "is there a limit on how much I can withdraw",
]


def pick_version(registry: ModelRegistry, data: Path, version: str | None) -> str:
    if version:
        return registry.get("intent", version).version
    trained = [i for i in registry.list("intent")
               if Path(i.meta.get("data_path", "")).resolve() == data.resolve()]
    if not trained:
        raise SystemExit(f"no intent version in {registry.root} was trained on {data}; use --train")
    return trained[-1].version


def latency_p50_ms(model_dir: Path, backend: str, threads: int, rounds: int) -> float:
    from training.models.intent import IntentClassifier

    classifier = IntentClassifier(model_dir, backend=backend, cpu_threads=threads)  # type: ignore[arg-type]
    for text in SENTENCES * 2:  # warm-up
        classifier.predict_batch([text])
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        classifier.predict_batch([SENTENCES[i % len(SENTENCES)]])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--registry", type=Path, default=Path("var/registry-bench"))
    parser.add_argument("--version", help="an existing version (default: newest on this dataset)")
    parser.add_argument("--train", action="store_true", help="train a new version first (minutes)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="CPU threads for the latency runs (default 1, as the deployment)")
    parser.add_argument("--rounds", type=int, default=200, help="single-sentence calls per backend")
    args = parser.parse_args(argv)

    data, split = DATASETS[args.dataset]
    registry = ModelRegistry(args.registry)
    load_before = os.getloadavg()[0]
    if args.train:
        from training.intent.build import IntentBuildOptions, train_intent

        info = train_intent(registry, data, options=IntentBuildOptions(onnx=True))
        version = info.version
    else:
        version = pick_version(registry, data, args.version)
    info = registry.get("intent", version)
    model_dir = info.path
    if not (model_dir / "model.onnx").is_file():
        from training.onnx_export import export_intent_onnx

        registry.update_meta("intent", version, export_intent_onnx(model_dir))
        info = registry.get("intent", version)

    from training.intent.evaluate import evaluate_intent

    scores = evaluate_intent(model_dir, data, split=split, backend="onnx")
    latency = {}
    for threads in args.threads:
        for backend in ("torch", "onnx"):
            latency[f"{backend}_p50_ms_{threads}t"] = latency_p50_ms(model_dir, backend, threads, args.rounds)
    metrics = info.metrics
    result = {
        "dataset": args.dataset,
        "version": version,
        "split": scores["split"],
        "n": scores["n"],
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        **{k: scores[k] for k in ("in_scope_accuracy", "oos_recall", "oos_threshold") if k in scores},
        "train_seconds": metrics.get("train_seconds"),
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"),
        "onnx_max_abs_diff": metrics.get("onnx_max_abs_diff"),
        "latency": latency,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1m_at_start": round(load_before, 2)},
    }
    quality = f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}"
    if "oos_recall" in result:
        quality += (f", in-scope accuracy {result['in_scope_accuracy']:.4f}, OOS recall "
                    f"{result['oos_recall']:.4f} (threshold {result.get('oos_threshold')})")
    print(f"{args.dataset} {version} on {scores['split']} (n={scores['n']}): {quality}")
    print(f"training: {result['train_seconds']} s, {result['epochs_run']} epochs "
          f"(best {result['best_epoch']}); ONNX max abs diff {result['onnx_max_abs_diff']}")
    print("single-sentence latency p50: " + ", ".join(f"{k} {v} ms" for k, v in latency.items()))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
