"""An in-memory `telephony.metrics.Metrics`: keeps every recording so a test can read the
figures back. Stricter than the real backend: a recording that breaks the metric's
declaration (wrong type, labels or label values) raises `MetricError` at once."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.metrics import Kind, Metric, Metrics

__all__ = ["MemoryMetrics", "Recording"]


@dataclass(frozen=True)
class Recording:
    kind: Kind
    name: str
    value: float
    labels: dict[str, str]


class MemoryMetrics(Metrics):
    def __init__(self) -> None:
        self.recordings: list[Recording] = []

    def observe(self, metric: Metric, value: float, **labels: object) -> None:
        self._add("histogram", metric, value, labels)

    def set(self, metric: Metric, value: float, **labels: object) -> None:
        self._add("gauge", metric, value, labels)

    def inc(self, metric: Metric, value: float = 1.0, **labels: object) -> None:
        self._add("counter", metric, value, labels)

    def _add(self, kind: Kind, metric: Metric, value: float, labels: dict[str, object]) -> None:
        tags = metric.label_values(kind, labels)
        self.recordings.append(Recording(kind, metric.name, float(value), tags))

    # ---- reading back ----------------------------------------------------------------------

    def values(self, metric: Metric, **labels: str) -> list[float]:
        """Every value recorded for `metric` whose labels include `labels`, in order."""
        return [r.value for r in self.recordings
                if r.name == metric.name and labels.items() <= r.labels.items()]

    def gauge(self, metric: Metric, **labels: str) -> float | None:
        """A gauge's last value (None: never set)."""
        values = self.values(metric, **labels)
        return values[-1] if values else None

    def count(self, metric: Metric, **labels: str) -> float:
        """A counter's total."""
        return sum(self.values(metric, **labels))

    def by_label(self, metric: Metric, key: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for r in self.recordings:
            if r.name == metric.name:
                out.setdefault(r.labels[key], []).append(r.value)
        return out
