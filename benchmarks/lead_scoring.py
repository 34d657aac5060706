"""Conversions per agent hour when the dialer calls leads in score order vs file order.

The model: a conversion version (trained here on the file's training rows, or `--model`)
scores the held-out test split it never saw (the 20 % carved at training, seed 0). A floor
of agents then works through those leads in one of three orders until `--agent-hours` of
agent time is spent:

* ``score``  — highest calibrated probability first (what the dialer does within a lead
  tier: `cluster.dialer.leads.priority_score`); ties keep file order;
* ``file``   — the order of the file (in bank-full: roughly by date, May 2008 first);
* ``random`` — a shuffled list, averaged over `--shuffles` seeded shuffles (the fair
  baseline: the file's order is not random, see docs/benchmarks.md).

``--day-share`` runs the same per calling day: the held-out leads of one day (a run of
rows with the same month and day, in file order) form that day's queue, agents get that
share of the time it would take to call the whole queue, and each order is applied within
the day (the call the day's time runs out in counts for the share of it that fits).
Every lead of a day's queue shares its calendar, so this is the figure in which
the model can only rank leads against each other, not days against days.

Each call costs its real talk time (the file's ``duration`` column: known only after the
call, so the model never sees it; here it only prices the call) plus `--overhead-s` of
dialling, ringing and wrap-up. A lead whose outcome is ``yes`` counts as a conversion.
Every lead in the split is reachable (bank-full holds only calls that were made); the
pacing of the dials is the subject of benchmarks/dialer_sim.py, not of this one.

    python benchmarks/lead_scoring.py                              # bank_marketing spec
    python benchmarks/lead_scoring.py --spec bank_marketing_no_calendar

Prints one human-readable line per order, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.conversion.evaluate import holdout_rows  # noqa: E402
from training.conversion.features import SPECS, read_labelled  # noqa: E402
from training.conversion.model import ConversionModel, train_conversion  # noqa: E402
from training.models.registry import ModelRegistry  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bank_marketing" / "train.csv"
BUDGETS_H = (25.0, 50.0, 100.0, 200.0, 400.0)


def work_through(order: list[int], seconds: np.ndarray, converted: np.ndarray,
                 budget_s: float, partial: bool = False) -> dict[str, float]:
    """Call leads in `order` while the next call still fits into `budget_s` of agent time.

    With `partial`, the call the budget ends in counts for the share of it that fits (so a
    day whose queue is shorter than one call still gets its expected share)."""
    spent = calls = wins = 0
    for i in order:
        if spent + seconds[i] > budget_s:
            if partial:
                share = (budget_s - spent) / seconds[i]
                spent, calls, wins = budget_s, calls + share, wins + share * int(converted[i])
            break
        spent += seconds[i]
        calls += 1
        wins += int(converted[i])
    hours = budget_s / 3600.0
    return {"calls": calls, "conversions": wins, "agent_hours_used": round(spent / 3600.0, 2),
            "conversions_per_agent_hour": round(wins / hours, 3)}


def calling_days(rows: list[dict[str, str]]) -> list[list[int]]:
    """Positions of `rows` grouped into runs with the same month and day (file order)."""
    days: list[list[int]] = []
    last = None
    for i, row in enumerate(rows):
        key = (row["month"], row["day"])
        if key != last:
            days.append([])
            last = key
        days[-1].append(i)
    return days


def per_day(orders: dict[str, list[int]], days: list[list[int]], seconds: np.ndarray,
            converted: np.ndarray, share: float) -> dict[str, float]:
    """Conversions per agent hour when each day's queue gets `share` of its calling time
    and is worked in the day's part of `order`."""
    position = {name: {lead: k for k, lead in enumerate(order)} for name, order in orders.items()}
    budget_s = sum(share * seconds[day].sum() for day in days)
    result = {}
    for name, rank in position.items():
        wins = sum(work_through(sorted(day, key=rank.__getitem__), seconds, converted,
                                share * seconds[day].sum(), partial=True)["conversions"]
                   for day in days)
        result[name] = round(wins / (budget_s / 3600.0), 3)
    return result


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in runs])), 3) for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="bank-full style CSV")
    parser.add_argument("--spec", default="bank_marketing", choices=[s for s in SPECS if s != "synthetic_leads"])
    parser.add_argument("--model", type=Path, help="a conversion version trained on --data "
                        "(default: train one now into a temporary registry)")
    parser.add_argument("--agent-hours", type=float, default=100.0, help="headline budget (default 100)")
    parser.add_argument("--overhead-s", type=float, default=60.0,
                        help="agent seconds per call besides talk time (default 60)")
    parser.add_argument("--day-share", type=float, default=0.25,
                        help="per-day run: share of each day's calling time agents get (default 0.25)")
    parser.add_argument("--shuffles", type=int, default=20, help="random orders averaged (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (split and model)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model_dir = args.model
        else:
            model_dir = train_conversion(ModelRegistry(tmp), args.data, spec=args.spec, seed=args.seed).path
        model = ConversionModel(model_dir)
        meta = json.loads((Path(model_dir) / "meta.json").read_text())
        data = read_labelled(args.data, model.spec)
        rows = holdout_rows(meta, data.y)  # file order
        p = model.predict_matrix(model.spec.encode([data.rows[i] for i in rows]))
    assert "duration" not in model.spec.columns
    seconds = np.array([float(data.rows[i]["duration"]) for i in rows]) + args.overhead_s
    converted = data.y[rows]
    local = list(range(len(rows)))
    orders = {"score": sorted(local, key=lambda i: -p[i]), "file": local}
    shuffled = []
    for s in range(args.shuffles):
        order = local[:]
        random.Random(s).shuffle(order)
        shuffled.append(order)

    results: dict[str, dict[str, dict[str, float]]] = {}
    for budget_h in sorted({*BUDGETS_H, args.agent_hours}):
        budget_s = budget_h * 3600.0
        by_order = {name: work_through(order, seconds, converted, budget_s) for name, order in orders.items()}
        by_order["random"] = _mean([work_through(o, seconds, converted, budget_s) for o in shuffled])
        results[f"{budget_h:g}"] = by_order
    head = results[f"{args.agent_hours:g}"]
    days = calling_days([data.rows[i] for i in rows])
    daily = [per_day({"score": orders["score"], "file": local, "random": o}, days, seconds,
                     converted, args.day_share) for o in shuffled]
    day_result = {"score": daily[0]["score"], "file": daily[0]["file"],
                  "random": round(float(np.mean([d["random"] for d in daily])), 3)}
    total_h = float(seconds.sum() / 3600.0)
    for name in ("score", "file", "random"):
        r = head[name]
        print(f"{name:>6} order: {r['conversions_per_agent_hour']:.2f} conversions per agent hour "
              f"({r['conversions']:.0f} from {r['calls']:.0f} calls in {args.agent_hours:g} agent hours; "
              f"held-out split {len(rows)} leads, {int(converted.sum())} converted, {total_h:.0f} h to call all)")
    print(f"per calling day ({len(days)} days, {args.day_share:.0%} of each day's queue time): "
          f"score {day_result['score']:.2f}, file {day_result['file']:.2f}, random "
          f"{day_result['random']:.2f} conversions per agent hour")
    summary = {
        "benchmark": "lead_scoring", "data": str(args.data), "spec": model.spec.name,
        "model_version": model.version, "calibration": model.calibrator.method,
        "holdout_leads": len(rows), "holdout_conversions": int(converted.sum()),
        "hours_to_call_all": round(total_h, 1), "overhead_s": args.overhead_s,
        "agent_hours": args.agent_hours,
        "conversions_per_agent_hour": {k: v["conversions_per_agent_hour"] for k, v in head.items()},
        "lift_vs_file": round(head["score"]["conversions_per_agent_hour"]
                              / max(head["file"]["conversions_per_agent_hour"], 1e-9), 2),
        "lift_vs_random": round(head["score"]["conversions_per_agent_hour"]
                                / max(head["random"]["conversions_per_agent_hour"], 1e-9), 2),
        "by_budget_hours": results,
        "per_day": {"days": len(days), "share": args.day_share,
                    "conversions_per_agent_hour": day_result,
                    "lift_vs_random": round(day_result["score"] / max(day_result["random"], 1e-9), 2)}, "test_auc": meta["metrics"].get("test_auc"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
