"""The metrics catalogue (`telephony.metrics`), its Ray backend and what operators are
handed with it: every metric declared once with low-cardinality labels, recordings that
break a declaration refused, Ray's backend recording without a Ray worker and never
raising into a call, the Grafana dashboard querying only metrics the code exports (as Ray
2.60 names them) and covering each of them, and docs/operations.md listing them all."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import ray

from cluster.actors import metrics as ray_backend
from cluster.actors.metrics import RayMetrics
from deployments.common import ServedVersion
from telephony.call_data import STAGES
from telephony.metrics import (
    CATALOGUE,
    ERROR_KINDS,
    ERRORS,
    MODEL_VERSION,
    NO_METRICS,
    QUEUE_WAIT,
    TURN_STAGE,
    MetricError,
    exported_names,
)
from tests.fakes.metrics import MemoryMetrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "configs" / "grafana" / "callfleet-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# labels that would make one series per call or per person
PERSONAL = re.compile(r"call|uuid|phone|number|caller|customer|lead|agent_id|text", re.I)


# ---- the catalogue -----------------------------------------------------------------------------


def test_every_metric_is_declared_once_with_the_callfleet_prefix() -> None:
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"callfleet_[a-z0-9_]+", n) for n in names), names
    # Ray adds "_total" to a counter itself; a name ending in it would export "_total_total"
    assert not [m.name for m in CATALOGUE if m.kind == "counter" and m.name.endswith("_total")]


def test_labels_are_low_cardinality() -> None:
    for metric in CATALOGUE:
        assert not [k for k in metric.labels if PERSONAL.search(k)], metric.name
        assert set(metric.allowed) <= set(metric.labels), metric.name
    assert TURN_STAGE.allowed["stage"] == tuple(s.removesuffix("_ms") for s in STAGES)
    assert ERRORS.allowed["kind"] == tuple(ERROR_KINDS)


def test_histograms_have_increasing_positive_buckets() -> None:
    for metric in CATALOGUE:
        if metric.kind == "histogram":
            b = metric.boundaries
            assert b and b[0] > 0 and list(b) == sorted(set(b)), metric.name
        else:
            assert metric.boundaries == (), metric.name


def test_exported_names_follow_rays_export() -> None:
    names = exported_names()
    assert names["ray_callfleet_errors_total"] is ERRORS
    assert {"ray_callfleet_queue_wait_seconds_bucket", "ray_callfleet_queue_wait_seconds_count",
            "ray_callfleet_queue_wait_seconds_sum"} <= set(names)
    assert names["ray_callfleet_model_version_info"] is MODEL_VERSION


def test_a_recording_that_breaks_the_declaration_is_refused() -> None:
    metrics = MemoryMetrics()
    with pytest.raises(MetricError, match="is a histogram"):
        metrics.inc(TURN_STAGE, stage="asr")
    with pytest.raises(MetricError, match="takes labels"):
        metrics.observe(TURN_STAGE, 10.0)
    with pytest.raises(MetricError, match="takes labels"):
        metrics.inc(ERRORS, kind="asr", call_uuid="call-1")
    with pytest.raises(MetricError, match="not one of"):
        metrics.inc(ERRORS, kind="something new")
    with pytest.raises(MetricError, match="not one of"):
        metrics.observe(QUEUE_WAIT, 3.0, outcome="answered")
    metrics.inc(ERRORS, kind="asr")
    assert metrics.count(ERRORS, kind="asr") == 1.0


def test_no_metrics_records_nothing_and_never_fails() -> None:
    NO_METRICS.inc(ERRORS, kind="whatever")
    NO_METRICS.observe(TURN_STAGE, 1.0)
    NO_METRICS.set(MODEL_VERSION, 1, kind="intent", version="v0001")


def test_a_promoted_model_version_takes_the_old_ones_place() -> None:
    metrics = MemoryMetrics()
    served = ServedVersion("intent", metrics)
    served.serving("v0001")
    served.serving("v0001")  # a reconfigure that kept the version: nothing new
    served.serving("v0002")
    assert metrics.gauge(MODEL_VERSION, kind="intent", version="v0001") == 0
    assert metrics.gauge(MODEL_VERSION, kind="intent", version="v0002") == 1
    assert len(metrics.recordings) == 3


# ---- Ray's backend -----------------------------------------------------------------------------


def test_ray_metrics_record_without_a_ray_worker_and_never_raise(caplog) -> None:
    joined = ray.is_initialized()
    metrics = RayMetrics()
    metrics.observe(TURN_STAGE, 120.0, stage="asr")
    metrics.set(MODEL_VERSION, 1, kind="intent", version="v0001")
    metrics.inc(ERRORS, kind="tts")
    with caplog.at_level(logging.WARNING, logger="callfleet.metrics"):
        metrics.inc(ERRORS, kind="not a kind")  # a bug: logged once, dropped, never raised
        metrics.inc(ERRORS, kind="not a kind either")
        metrics.observe(TURN_STAGE, 1.0, stage="asr", call="x")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("not recorded" in w for w in warned)  # once per metric
    assert ray.is_initialized() == joined  # recording did not start or join a cluster


class SeenGauge:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, tags))


def test_ray_gauges_are_set_again_so_ray_does_not_drop_them(monkeypatch) -> None:
    # Ray drops a gauge series not set for ~20 s: a model version set once at start-up
    # would vanish from Prometheus
    keeper = ray_backend._GaugeKeeper()
    monkeypatch.setattr(keeper, "_run", lambda: None)  # refreshed by hand below
    gauge = SeenGauge()
    keeper.keep(gauge, "callfleet_model_version_info", 1.0, {"kind": "intent", "version": "v1"})
    keeper.keep(gauge, "callfleet_model_version_info", 0.0, {"kind": "intent", "version": "v1"})
    keeper.keep(gauge, "callfleet_model_version_info", 1.0, {"kind": "intent", "version": "v2"})
    gauge.calls.clear()
    keeper.refresh()
    assert gauge.calls == [(0.0, {"kind": "intent", "version": "v1"}),
                           (1.0, {"kind": "intent", "version": "v2"})]
    assert ray_backend.GAUGE_REFRESH_S < 10  # Ray reports every ~10 s


# ---- the Grafana dashboard ---------------------------------------------------------------------


def _exprs(dashboard: dict) -> list[str]:
    out = []
    for panel in dashboard["panels"]:
        out += [t["expr"] for t in panel.get("targets", [])]
        for inner in panel.get("panels", []):
            out += [t["expr"] for t in inner.get("targets", [])]
    return out


def _metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name CallFleet series (label names and
    values, functions and keywords are not)."""
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    no_ranges = re.sub(r"\[[^\]]*\]", "[]", no_strings)
    return {name for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", no_ranges)
            if "callfleet" in name}


def test_the_dashboard_queries_only_metrics_the_code_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _exprs(dashboard)
    assert exprs
    exported = exported_names()
    unknown = {name for e in exprs for name in _metric_names(e)} - set(exported)
    assert not unknown, f"dashboard queries series the code does not export: {sorted(unknown)}"
    shown = {exported[name].name for e in exprs for name in _metric_names(e)}
    assert shown == {m.name for m in CATALOGUE}, "every exported metric has a panel"


def test_the_dashboard_reads_from_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${" + variable["name"] + "}", panel["title"]
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Turn latency p50 by stage", "Turn latency p95 by stage", "Active calls",
            "Queue length", "Queue wait", "Agents by state", "Pacing ratio by campaign",
            "Abandonment vs cap", "Model versions served", "Errors by kind"} <= titles
    latency = next(p for p in dashboard["panels"] if p["title"] == "Turn latency p95 by stage")
    assert "histogram_quantile(0.95" in latency["targets"][0]["expr"]
    assert "_bucket" in latency["targets"][0]["expr"]


def test_the_operations_guide_lists_every_exported_metric() -> None:
    text = OPERATIONS.read_text()
    for metric in CATALOGUE:
        name = metric.exported()[0].removesuffix("_bucket")  # a histogram: its base name
        assert f"`{name}`" in text, name
    for kind in ERROR_KINDS:
        assert f"`{kind}`" in text, kind
