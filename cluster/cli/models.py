"""`callfleet models` — inspect the model registry and choose which version serves.

    callfleet models list [KIND]            versions per kind, key metrics, * = current
    callfleet models show KIND [VERSION]    everything recorded about one version
    callfleet models compare KIND [V ...]   every numeric metric, one column per version
    callfleet models export-onnx intent V   write and verify model.onnx for a version
    callfleet models promote KIND VERSION   make VERSION the one the cluster loads
    callfleet models rollback KIND          undo the last promotion of KIND

Promotions made here are recorded in ``<registry>/<kind>/HISTORY.jsonl`` (one JSON line
per change, written with a single ``O_APPEND`` write so concurrent writers never
interleave) so that `rollback` knows where to go back to. A rollback is recorded too, so
repeated rollbacks walk further back instead of toggling between two versions.

User mistakes (unknown kind or version, nothing to roll back) exit with status 2 and one
line on stderr; the registry itself (`training.models.registry`) stays free of CLI concerns.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from cluster.cli.common import CliError, console, model_registry, out, reports_errors
from cluster.runtime.model_swap import SwapFailed, apply_to_cluster
from cluster.runtime.serve_deploy import SERVED_MODEL_DEPLOYMENTS, ServeDeployError
from configs.settings import load_settings
from training.models.registry import BUILD_COMMANDS, ModelNotFoundError, ModelRegistry, VersionInfo
from training.models.remote import RemoteRegistryError, push_registry
from training.onnx_export import OnnxMismatchError, export_intent_onnx

__all__ = ["HISTORY_FILE", "register"]

log = logging.getLogger("callfleet.cluster.models_cli")

HISTORY_FILE = "HISTORY.jsonl"
#: kinds the Serve app loads; listed even before any version of them is built.
SERVED_KINDS = tuple(SERVED_MODEL_DEPLOYMENTS)
_VERSION_ARG_RE = re.compile(r"^v?(\d+)$")
#: metrics `models list` shows by default (quality, size of the training set, cost);
#: --all-metrics or `models compare` show every one
_KEY_METRIC_RE = re.compile(
    r"^(holdout|eval|test)_(accuracy|macro_f1|in_scope_accuracy|oos_recall|auc|brier)$"
    r"|^(n_train|train_seconds|domain_cv_macro_f1)$"
)

# -- parser ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``models`` and its sub-commands on the top-level `subparsers`."""
    models = subparsers.add_parser(
        "models",
        help="list, inspect, promote and roll back trained model versions",
        description="Inspect the model registry and choose which version of each model kind "
        "the cluster serves. Promotions are recorded in <registry>/<kind>/HISTORY.jsonl.",
    )
    registry_help = "model registry folder (default: registry_path from the settings)"
    models.add_argument("--registry", metavar="DIR", help=registry_help)
    # also accepted after the action (`models list --registry DIR`); SUPPRESS keeps an
    # absent one from overwriting a value given before the action
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="DIR", default=argparse.SUPPRESS, help=registry_help)
    sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "list", parents=[common], help="list versions per kind with key metrics; * marks the current one",
        description="One table per model kind: version, creation time, base model, every "
        "numeric metric, short data sha256; * marks the promoted (current) version.",
    )
    p.add_argument("kind", nargs="?", metavar="KIND",
                   help="only this kind (e.g. intent, emotion); default: all kinds")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--all-metrics", action="store_true",
                   help="a column for every numeric metric (default: held-out / evaluation "
                   "accuracy, macro-F1, in-scope accuracy, OOS recall, AUC, Brier; n_train; train_seconds)")
    p.set_defaults(func=cmd_models_list)

    p = sub.add_parser(
        "show", parents=[common], help="show all metadata of one version",
        description="All recorded metadata of one version: labels, metrics, training config, "
        "data hash, folder and size on disk.",
    )
    p.add_argument("kind", metavar="KIND", help="model kind (e.g. intent, emotion)")
    p.add_argument("version", nargs="?", default="current", metavar="VERSION",
                   help="version such as v0002 (or 2); default: the current one")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_models_show)

    p = sub.add_parser(
        "compare", parents=[common], help="every numeric metric of several versions side by side",
        description="One row per metric, one column per version (default: all versions of "
        "KIND), so a candidate can be judged against the current one before promoting it.",
    )
    p.add_argument("kind", metavar="KIND", help="model kind (e.g. intent, emotion, conversion)")
    p.add_argument("versions", nargs="*", metavar="VERSION", help="versions to compare (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_models_compare)

    p = sub.add_parser(
        "export-onnx", parents=[common], help="export an intent version to ONNX (checked against torch)",
        description="Write model.onnx into the version folder, verify that onnxruntime's logits "
        "match torch's within 1e-4 and record the max abs difference in the version's metrics. "
        "Serving then uses ONNX Runtime for that version (intent backend 'auto').",
    )
    p.add_argument("kind", metavar="KIND", choices=["intent"], help="model kind (only intent)")
    p.add_argument("version", metavar="VERSION", help="version such as v0003 (or 3)")
    p.set_defaults(func=cmd_models_export_onnx)

    p = sub.add_parser(
        "promote", parents=[common], help="make VERSION the one the cluster serves",
        description="Make VERSION the current version of KIND and record the change for "
        "`rollback`. When a cluster started by `callfleet up` is running, its deployment "
        "serving KIND is reconfigured in place (user_config): replicas load VERSION beside "
        "the old one and swap without a restart or a failed request. If they cannot load "
        "it, the previous version is restored.",
    )
    p.add_argument("kind", metavar="KIND", help="model kind (e.g. intent, emotion)")
    p.add_argument("version", metavar="VERSION", help="version such as v0003 (or 3)")
    p.add_argument("--no-apply", action="store_true", help="only change the registry; a running "
                   "cluster keeps its version until the next `callfleet up`")
    p.set_defaults(func=cmd_models_promote)

    p = sub.add_parser(
        "rollback", parents=[common], help="go back to the version that was current before the last promotion",
        description="Promote the version that was current before the last promotion recorded "
        "in HISTORY.jsonl. Repeated rollbacks walk further back.",
    )
    p.add_argument("kind", metavar="KIND", help="model kind (e.g. intent, emotion)")
    p.add_argument("--no-apply", action="store_true", help="only change the registry")
    p.set_defaults(func=cmd_models_rollback)

    _register_push(sub, common)


def _register_push(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "push", parents=[common], help="copy the registry to object storage (multi-node)",
        description="Copy every committed version the store lacks, then each kind's current "
        "pointer, from the local registry to object storage (an fsspec URL such as "
        "s3://bucket/callfleet/registry). Nodes with registry_url set to it then download "
        "versions as they need them. S3 credentials and endpoint come from the AWS_* "
        "environment (AWS_ENDPOINT_URL for an S3-compatible server).")
    p.add_argument("--to", required=True, metavar="URL", help="registry URL on object storage")
    p.add_argument("kinds", nargs="*", metavar="KIND", help="only these kinds (default: all)")
    p.set_defaults(func=cmd_models_push)


@reports_errors(lambda: (RemoteRegistryError,))
def cmd_models_push(args: argparse.Namespace) -> int:
    registry = model_registry(args)
    copied = push_registry(registry.root, args.to, args.kinds or None,
                           progress=lambda what: console.print(f"[dim]·[/dim] uploading {what}"))
    console.print(f"pushed {len(copied)} version(s) to {args.to}; current pointers updated")
    return 0


def _registry_errors() -> tuple[type[Exception], ...]:
    """An unknown version asked of the registry is the user's mistake (status 2)."""
    return (ModelNotFoundError,)


# -- commands ----------------------------------------------------------------------------


@reports_errors(_registry_errors)
def cmd_models_list(args: argparse.Namespace) -> int:
    registry = model_registry(args)
    kinds = [_checked_kind(registry, args.kind)] if args.kind else _kinds(registry)
    report = {kind: _kind_summary(registry, kind) for kind in kinds}
    if args.json:
        print(json.dumps({"registry": str(registry.root), "kinds": report}, indent=2))
        return 0
    for kind, summary in report.items():
        if summary["versions"]:
            out.print(_versions_table(kind, summary, all_metrics=args.all_metrics))
        else:
            out.print(f"[bold]{kind}[/bold]: no versions yet; {_build_hint(registry, kind)}")
    return 0


@reports_errors(_registry_errors)
def cmd_models_show(args: argparse.Namespace) -> int:
    registry = model_registry(args)
    kind = _checked_kind(registry, args.kind)
    info = _version(registry, kind, args.version)
    current = registry.current(kind)
    size = _size_on_disk(info.path)
    if args.json:
        doc = {"kind": kind, "version": info.version, "current": info.version == current,
               "path": str(info.path), "size_bytes": size, "meta": info.meta}
        print(json.dumps(doc, indent=2, default=str))
        return 0
    marker = " [green](current)[/green]" if info.version == current else ""
    out.print(f"[bold]{kind} {info.version}[/bold]{marker}")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("folder", str(info.path))
    table.add_row("size on disk", _human_size(size))
    shown = {"kind", "version", "label_map", "metrics"}
    for key in ("created_at", "base_model", "data_sha256"):
        if key in info.meta:
            table.add_row(key, _plain(info.meta[key]))
            shown.add(key)
    for key in sorted(set(info.meta) - shown):
        table.add_row(key, _plain(info.meta[key]))
    out.print(table)
    out.print("[bold]labels[/bold]")
    labels = info.meta.get("label_map") or {}
    for index, name in sorted(labels.items(), key=lambda item: _label_order(item[0])):
        out.print(f"  {index:>3}  {name}")
    out.print("[bold]metrics[/bold]")
    for name, value in sorted(info.metrics.items()):
        out.print(f"  {name}: {_plain(value)}")
    return 0


@reports_errors(_registry_errors)
def cmd_models_compare(args: argparse.Namespace) -> int:
    registry = model_registry(args)
    kind = _checked_kind(registry, args.kind)
    infos = ([_version(registry, kind, v) for v in args.versions] if args.versions
             else registry.list(kind))
    if not infos:
        raise CliError(f"{kind} has no versions in {registry.root}; {_build_hint(registry, kind)}")
    current = registry.current(kind)
    metrics = {info.version: _numeric_metrics(info.meta) for info in infos}
    if args.json:
        print(json.dumps({"kind": kind, "current": current, "metrics": metrics}, indent=2))
        return 0
    names = sorted({name for values in metrics.values() for name in values})
    table = Table(title=f"{kind} metrics by version (current: {current or 'none'})", title_justify="left")
    table.add_column("metric", style="bold")
    for info in infos:
        table.add_column(info.version + (" *" if info.version == current else ""), justify="right")
    for name in names:
        table.add_row(name, *(_number(metrics[info.version].get(name)) for info in infos))
    out.print(table)
    return 0


@reports_errors(_registry_errors)
def cmd_models_export_onnx(args: argparse.Namespace) -> int:

    registry = model_registry(args)
    kind = _checked_kind(registry, args.kind)
    info = _version(registry, kind, args.version)
    try:
        with console.status(f"exporting {kind} {info.version} to ONNX"):
            figures = export_intent_onnx(info.path)
    except OnnxMismatchError as exc:
        raise CliError(str(exc)) from None
    registry.update_meta(kind, info.version, figures)
    out.print(f"{kind} {info.version}: wrote {info.path / 'model.onnx'}; max abs logit difference "
              f"vs torch {figures['onnx_max_abs_diff']:.2e} (opset {figures['onnx_opset']})")
    return 0


@reports_errors(_registry_errors)
def cmd_models_promote(args: argparse.Namespace) -> int:
    registry = model_registry(args)
    kind = _checked_kind(registry, args.kind)
    target = _version(registry, kind, args.version)
    return _switch(registry, kind, target, action="promote", args=args)


@reports_errors(_registry_errors)
def cmd_models_rollback(args: argparse.Namespace) -> int:
    registry = model_registry(args)
    kind = _checked_kind(registry, args.kind)
    history = read_history(registry, kind)
    if not history:
        raise CliError(
            f"no promotion history for {kind} in {registry.root / kind / HISTORY_FILE}; "
            f"nothing to roll back (promote a version with: callfleet models promote {kind} VERSION)"
        )
    previous = _rollback_target(history)
    if previous is None:
        raise CliError(
            f"no {kind} version was current before the earliest recorded promotion; "
            "nothing to roll back to"
        )
    return _switch(registry, kind, _version(registry, kind, previous), action="rollback", args=args)


# -- promotion history -------------------------------------------------------------------


def read_history(registry: ModelRegistry, kind: str) -> list[dict[str, Any]]:
    """The recorded promotions of `kind`, oldest first; unreadable lines are skipped."""
    path = registry.root / kind / HISTORY_FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and "to" in record:
            records.append(record)
        elif line.strip():
            log.warning("skipping unreadable line %s of %s", number, path)
    return records


def _promote_recorded(registry: ModelRegistry, kind: str, version: str, before: str | None,
                      action: str, **extra: Any) -> None:
    """Promote `version` and append the change to the kind's history (for `rollback`)."""
    registry.promote(kind, version)
    _append_history(registry, kind, {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "from": before, "to": version, "action": action, **extra,
    })


def _append_history(registry: ModelRegistry, kind: str, record: dict[str, Any]) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(registry.root / kind / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of one line: concurrent appends never interleave
    finally:
        os.close(fd)


def _rollback_target(history: list[dict[str, Any]]) -> str | None:
    """The version current before the last promotion that has not been rolled back yet.

    Raises CliError when every recorded promotion was already rolled back.
    """
    undo_stack: list[str | None] = []
    for record in history:
        if record.get("action") == "rollback":
            if undo_stack:
                undo_stack.pop()
        else:
            undo_stack.append(record.get("from"))
    if not undo_stack:
        raise CliError("every recorded promotion has already been rolled back")
    return undo_stack[-1]


def _switch(registry: ModelRegistry, kind: str, target: VersionInfo, action: str,
            args: argparse.Namespace) -> int:
    before = registry.current(kind)
    if before == target.version:
        out.print(f"{kind} {target.version} is already current; nothing changed")
        return 0
    old = _loaded_or_none(registry, kind, before)
    _promote_recorded(registry, kind, target.version, before, action)
    verb = "rolled back" if action == "rollback" else "promoted"
    out.print(f"{kind}: {before or '(none)'} -> [bold]{target.version}[/bold] ({verb})")
    new_metrics = _numeric_metrics(target.meta)
    old_metrics = _numeric_metrics(old.meta) if old else {}
    for name in sorted(set(new_metrics) | set(old_metrics)):  # what the switch changes
        if new_metrics.get(name) == old_metrics.get(name):
            continue
        out.print(f"  {name}: {_number(old_metrics.get(name))} -> {_number(new_metrics.get(name))}")
    if getattr(args, "no_apply", False):
        out.print("the running cluster (if any) keeps its version until `callfleet up`")
        return 0
    return _apply_live(args, registry, kind, target.version, before)


def _apply_live(args: argparse.Namespace, registry: ModelRegistry, kind: str, version: str,
                before: str | None) -> int:
    """Reconfigure a running cluster; on failure put the registry back as it was."""

    settings = load_settings(getattr(args, "config", None))
    try:
        with console.status(f"reconfiguring the running cluster to serve {kind} {version}"):
            outcome = apply_to_cluster(settings, registry.root, kind, version)
    except (SwapFailed, ServeDeployError) as exc:
        if before:
            _promote_recorded(registry, kind, before, version, "rollback",
                              reason="the running cluster could not load it")
        raise CliError(f"{kind} {version} was not put live: {exc}; the registry "
                       f"names {before or '(none)'} again") from None
    out.print(outcome.message)
    return 0


# -- helpers -----------------------------------------------------------------------------


def _kinds(registry: ModelRegistry) -> list[str]:
    """The served kinds plus any other kind folder present in the registry."""
    found = set(SERVED_KINDS)
    if registry.root.is_dir():
        for child in registry.root.iterdir():
            if child.is_dir() and not child.name.startswith("."):
                try:
                    registry.list(child.name)  # validates the name as a kind
                except ValueError:
                    continue
                found.add(child.name)
    return sorted(found)


def _checked_kind(registry: ModelRegistry, kind: str) -> str:
    known = _kinds(registry)
    if kind not in known:
        raise CliError(f"unknown model kind {kind!r}; known kinds: {', '.join(known)}")
    return kind


def _normalise_version(version: str) -> str:
    match = _VERSION_ARG_RE.match(version.strip())
    return f"v{int(match.group(1)):04d}" if match else version


def _version(registry: ModelRegistry, kind: str, version: str) -> VersionInfo:
    """A committed version, with a one-line error listing the available ones."""
    available = [info.version for info in registry.list(kind)]
    listing = ", ".join(available) if available else "none"
    if version == "current":
        name = registry.current(kind)
        if name is None:
            hint = (f"promote one with: callfleet models promote {kind} {available[-1]}"
                    if available else _build_hint(registry, kind))
            raise CliError(f"no {kind} version is promoted; available versions: "
                           f"{listing}; {hint}")
    else:
        name = _normalise_version(version)
    if name not in available:
        raise CliError(f"{kind} has no version {name!r} in {registry.root}; "
                       f"available versions: {listing}")
    return registry.get(kind, name)


def _loaded_or_none(registry: ModelRegistry, kind: str, version: str | None) -> VersionInfo | None:
    if version is None:
        return None
    try:
        return registry.get(kind, version)
    except ModelNotFoundError:
        return None


def _kind_summary(registry: ModelRegistry, kind: str) -> dict[str, Any]:
    current = registry.current(kind)
    versions = [{
        "version": info.version,
        "current": info.version == current,
        "created_at": info.meta.get("created_at"),
        "base_model": info.meta.get("base_model"),
        "metrics": _numeric_metrics(info.meta),
        "data_sha256": info.meta.get("data_sha256"),
        "path": str(info.path),
    } for info in registry.list(kind)]
    return {"current": current, "versions": versions}


def _versions_table(kind: str, summary: dict[str, Any], all_metrics: bool = False) -> Table:
    metric_names = sorted({name for v in summary["versions"] for name in v["metrics"]
                           if all_metrics or _KEY_METRIC_RE.search(name)})
    table = Table(title=f"{kind} models (current: {summary['current'] or 'none'})",
                  title_justify="left")
    table.add_column("", width=1, style="bold green")
    table.add_column("version", style="bold")
    table.add_column("created")
    table.add_column("base model", no_wrap=True, overflow="ellipsis", max_width=18)
    for name in metric_names:
        table.add_column(name, justify="right")
    table.add_column("data sha")
    for v in summary["versions"]:
        table.add_row(
            "*" if v["current"] else "", v["version"], _short_time(v["created_at"]),
            str(v["base_model"] or "-"),
            *(_number(v["metrics"].get(name)) for name in metric_names),
            (v["data_sha256"] or "-")[:12],
        )
    return table


def _numeric_metrics(meta: dict[str, Any]) -> dict[str, int | float]:
    """Top-level numeric metrics; nested ones (per-class scores) are left to `show`."""
    metrics = meta.get("metrics") or {}
    return {name: value for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 0.001 else f"{value:.3f}"
    return str(value)


def _plain(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return _number(value)


def _short_time(created_at: str | None) -> str:
    if not created_at:
        return "-"
    try:
        return datetime.fromisoformat(created_at).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created_at


def _label_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def _size_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable; keeps type checkers content


def _build_hint(registry: ModelRegistry, kind: str) -> str:
    command = BUILD_COMMANDS.get(kind)
    if command is None:
        return "build one with this kind's training script"
    return "build one with: " + command.format(root=registry.root)
