"""Autoscaling under a load ramp: simulated calls step up and back down through a running
cluster whose deployments autoscale, while the replica count of each deployment is
sampled every second; afterwards the cluster idles until the replicas are removed again.
Prints per load step the turn latency p50/p95 and the replicas seen, then how long the
scale-down took; the last line is one JSON object. `--plot FILE` draws replicas and load
over time (PNG).

    CALLFLEET_ASR__AUTOSCALING__MAX_REPLICAS=3 \\
    CALLFLEET_ASR__AUTOSCALING__TARGET_ONGOING_REQUESTS=1 \\
    CALLFLEET_ASR__AUTOSCALING__DOWNSCALE_DELAY_S=30 callfleet up
    python benchmarks/autoscale.py --levels 2 8 16 8 2 --plot docs/img/autoscale.png

Which deployments scale, between which counts and on what target is up to the settings
(`<deployment>.replicas` is the minimum, `<deployment>.autoscaling.*` the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from call_load import run_level  # noqa: E402

from cluster.runtime.lifecycle import connect_ray, read_info  # noqa: E402
from configs.settings import load_settings  # noqa: E402
from telephony.sim.caller_voice import CallerVoice  # noqa: E402
from telephony.sim.scenarios import load_scenarios  # noqa: E402


class ReplicaSampler(threading.Thread):
    """Running replicas per deployment of the app, every `every_s`, with the load step."""

    def __init__(self, app: str, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.app, self.every_s = app, every_s
        self.samples: list[dict] = []
        self.load = 0
        self.started = time.monotonic()
        self._halt = threading.Event()

    def counts(self) -> dict[str, int]:
        from ray import serve  # heavy: loads ray

        app = serve.status().applications.get(self.app)
        if app is None:
            return {}
        return {name: d.replica_states.get("RUNNING", 0) for name, d in app.deployments.items()}

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.samples.append({"t": round(time.monotonic() - self.started, 1),
                                     "calls": self.load, **self.counts()})
            except Exception as exc:  # a sample lost is not a benchmark lost
                print(f"sample failed: {type(exc).__name__}", file=sys.stderr)
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def served_autoscaling(app: str) -> dict[str, dict | None]:
    """The autoscaling config each deployment runs with, as the Serve controller reports it."""
    from ray.serve.context import _get_global_client  # heavy: loads ray

    details = _get_global_client().get_serve_details()
    deployments = details["applications"][app]["deployments"]
    return {name: d["deployment_config"].get("autoscaling_config")
            for name, d in deployments.items()}


def plot(samples: list[dict], path: str) -> None:
    import matplotlib  # heavy: loads matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loads matplotlib

    t = [s["t"] for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4))
    names = sorted({k for s in samples for k in s} - {"t", "calls"})
    for name in names:
        ax.step(t, [s.get(name, 0) for s in samples], where="post", label=f"{name} replicas")
    ax.set_xlabel("seconds")
    ax.set_ylabel("replicas running")
    ax2 = ax.twinx()
    ax2.fill_between(t, [s["calls"] for s in samples], step="post", alpha=0.15, color="grey")
    ax2.set_ylabel("concurrent calls (grey)")
    ax.legend(loc="upper left")
    ax.set_title("Replicas under a load ramp")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 8, 16, 8, 2],
                        help="concurrent calls of each step, in order (default 2 8 16 8 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of calls per step")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between call starts")
    parser.add_argument("--cooldown", type=float, default=180.0,
                        help="idle this long at most, waiting for the replicas to go back")
    parser.add_argument("--plot", metavar="PNG", help="draw replicas and load over time")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = load_settings(None)
    info = read_info(settings)
    if info is None:
        print("no running cluster: start one with `callfleet up`", file=sys.stderr)
        return 2
    connect_ray(info.ray_address)
    scenarios, voice = load_scenarios(None), CallerVoice()
    sampler = ReplicaSampler(info.app_name)
    minimum = sampler.counts()
    sampler.start()
    steps = []
    for n in args.levels:
        sampler.load = n
        began = len(sampler.samples)
        level = run_level(settings, info, scenarios, voice, n, args.stagger, "fork", args.rounds)
        seen = sampler.samples[began:] or [sampler.samples[-1]]
        peak = {name: max(s.get(name, 0) for s in seen) for name in minimum}
        steps.append({"calls": n, "p50_s": level["turn_latency_p50_s"],
                      "p95_s": level["turn_latency_p95_s"], "turns": level["turns_answered"],
                      "dropped": level["dropped"], "failed": level["failed"],
                      "replicas_max": peak})
        print(f"{n:>3} calls: p50 {level['turn_latency_p50_s']:.2f} s  p95 "
              f"{level['turn_latency_p95_s']:.2f} s  dropped {level['dropped']}  replicas "
              + " ".join(f"{k}={v}" for k, v in peak.items() if v != minimum.get(k, v) or k
                         in ("asr", "gateway")), file=sys.stderr)
    sampler.load = 0
    idle_from = time.monotonic()
    while time.monotonic() - idle_from < args.cooldown:
        if sampler.counts() == minimum:
            break
        time.sleep(2)
    scale_down_s = round(time.monotonic() - idle_from, 1)
    back = sampler.counts() == minimum
    sampler.stop()
    peak_all = {name: max(s.get(name, 0) for s in sampler.samples) for name in minimum}
    result = {
        "benchmark": "autoscale",
        "machine": f"{platform.machine()} {psutil.cpu_count()} cpu(s)",
        "replicas_min": minimum, "replicas_peak": peak_all, "steps": steps,
        "back_to_min": back, "scale_down_s": scale_down_s,
        "autoscaling": served_autoscaling(info.app_name),
    }
    print(f"replicas min {minimum} → peak {peak_all}; back to the minimum "
          f"{'after' if back else 'NOT within'} {scale_down_s} s idle", file=sys.stderr)
    if args.plot:
        plot(sampler.samples, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
