"""The architecture holds: top-level folders import only downward, cluster's rooms keep
their order, training jobs sit above the model definitions serving shares, and no two
sibling files or folders import each other (docs/architecture.md, "Layers").

The contracts live in pyproject.toml ([tool.importlinter]); import-linter reads every
import, including those inside functions, so a circle cannot hide in a function body."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cluster", "deployments", "bots", "telephony", "training", "configs")


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _test_code_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.name for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.name.startswith(("Fake", "Stub", "Mock"))]


def test_no_test_fakes_inside_production_packages() -> None:
    offenders = {str(p.relative_to(ROOT)): names
                 for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                 if (names := _test_code_in(p)) or p.stem in ("testing", "fakes")}
    assert not offenders, f"test fakes belong under tests/: {offenders}"


def test_data_files_found_from_every_room() -> None:
    """Modules find their data relative to their own file; a module moved to another
    folder depth must still find it (the switch actor once looked in cluster/configs)."""
    from cluster.actors.switch import OUTBOUND_SCENARIOS
    from cluster.cli.bots import SHOP_DATA
    from deployments.gateway.bot_registry import PROJECT
    from telephony.sim.scenarios import DEFAULT_SCENARIOS
    from training.emotion.default import DEFAULT_DOMAIN_DATA
    from training.emotion.goemotions import DEFAULT_SAMPLE
    from training.intent.default import _BOT_DATA

    for path in (OUTBOUND_SCENARIOS, SHOP_DATA, DEFAULT_SCENARIOS, DEFAULT_DOMAIN_DATA,
                 DEFAULT_SAMPLE, _BOT_DATA, PROJECT / "bots" / "scripts"):
        assert path.exists(), path


def _loaded(modules: str, heavy: tuple[str, ...]) -> list[str]:
    probe = (f"import sys, {modules}\n"
             f"print(' '.join(sorted(m for m in {heavy!r} if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_light_modules_stay_light() -> None:
    """The settings schema loads no HTTP client, Ray or torch (a settings import once
    dragged in the webhook sender and httpx); the call path's plain-Python modules load
    neither Ray nor torch."""
    assert _loaded("configs.settings, telephony.vad, bots.kb.settings",
                   ("httpx", "ray", "torch", "transformers", "rich")) == []
    assert _loaded("telephony.call_session, bots.kb, cluster.records.call_state",
                   ("ray", "torch", "transformers")) == []


def test_imports_inside_functions_say_why() -> None:
    """An import inside a function is for a heavy optional dependency only (torch, Ray,
    transformers ...), and says so on its line; everything else is imported at the top,
    where import-linter and a reader see it."""
    silent = []
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines), str(path))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        span = lines[inner.lineno - 1:inner.end_lineno]
                        if not any("#" in line for line in span):
                            silent.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert not silent, f"imports inside functions without a reason: {sorted(set(silent))}"
