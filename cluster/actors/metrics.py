"""`RayMetrics`: the `telephony.metrics.Metrics` interface over Ray's metrics API.

Each process (gateway replica, model replica, router and dialer actors) records into its
own `ray.util.metrics` objects; the node's metrics agent exports them, every ~10 s, on the
node's metrics export port (`ray.metrics_port`, `callfleet up` starts Ray with it) as
``ray_<name>`` with Ray's own labels added (``WorkerId``, ``NodeAddress``, ``SessionName``,
``Component``, ``Version``). docs/operations.md has the names and how to scrape them.

Ray 2.60's agent drops a gauge series that has not been set for two report intervals
(~20 s: that is how a dead worker's gauges go away), so a gauge set once (the model version
a replica serves) or rarely (active calls on a quiet replica) would vanish. Every gauge
value recorded here is therefore set again every `GAUGE_REFRESH_S` by one daemon thread per
process, for as long as the process lives.

A metric that cannot be recorded (a backend failure, labels that break its declaration)
is logged once per metric and dropped: the figures never cost a call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from telephony.metrics import Kind, Metric

__all__ = ["GAUGE_REFRESH_S", "RayMetrics"]

log = logging.getLogger("callfleet.metrics")

GAUGE_REFRESH_S = 5.0  # under Ray's ~10 s report interval, so no gauge is ever evicted

# one Ray metric object per name and process, whoever asks for it
_made: dict[str, Any] = {}
_made_lock = threading.Lock()


def _ray_metric(metric: Metric) -> Any:
    with _made_lock:
        made = _made.get(metric.name)
        if made is None:
            from ray.util import metrics as ray_metrics  # heavy: loads ray

            if metric.kind == "histogram":
                made = ray_metrics.Histogram(metric.name, description=metric.description,
                                             boundaries=list(metric.boundaries),
                                             tag_keys=metric.labels)
            elif metric.kind == "gauge":
                made = ray_metrics.Gauge(metric.name, description=metric.description,
                                         tag_keys=metric.labels)
            else:
                made = ray_metrics.Counter(metric.name, description=metric.description,
                                           tag_keys=metric.labels)
            _made[metric.name] = made
        return made


class _GaugeKeeper:
    """The last value of every gauge series this process recorded, set again every
    `GAUGE_REFRESH_S` (a daemon thread, started with the first gauge)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, frozenset[tuple[str, str]]], tuple[Any, float, dict]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def keep(self, made: Any, name: str, value: float, tags: dict[str, str]) -> None:
        with self._lock:
            self._values[(name, frozenset(tags.items()))] = (made, value, tags)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callfleet-gauges",
                                                daemon=True)
                self._thread.start()

    def refresh(self) -> None:
        with self._lock:
            kept = list(self._values.values())
        for made, value, tags in kept:
            try:
                made.set(value, tags=tags)
            except Exception as exc:  # keep refreshing the others
                log.debug("gauge refresh failed: %s", exc)

    def _run(self) -> None:
        while True:
            time.sleep(GAUGE_REFRESH_S)
            self.refresh()


_gauges = _GaugeKeeper()


class RayMetrics:
    """Records to Ray's metrics (Prometheus export). Needs no Ray worker to record: in a
    process outside a cluster the figures simply go nowhere."""

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def observe(self, metric: Metric, value: float, **labels: object) -> None:
        self._record("histogram", metric, value, labels)

    def set(self, metric: Metric, value: float, **labels: object) -> None:
        self._record("gauge", metric, value, labels)

    def inc(self, metric: Metric, value: float = 1.0, **labels: object) -> None:
        self._record("counter", metric, value, labels)

    def _record(self, kind: Kind, metric: Metric, value: float, labels: dict[str, object]) -> None:
        try:
            tags = metric.label_values(kind, labels)
            made = _ray_metric(metric)
            if kind == "histogram":
                made.observe(float(value), tags=tags)
            elif kind == "gauge":
                made.set(float(value), tags=tags)
                _gauges.keep(made, metric.name, float(value), tags)
            else:
                made.inc(float(value), tags=tags)
        except Exception as exc:  # MetricError or Ray's: the figures never cost a call
            if metric.name not in self._warned:
                self._warned.add(metric.name)
                log.warning("metric %s not recorded: %s", metric.name, exc)
