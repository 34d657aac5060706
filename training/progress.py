"""The progress bar the training commands draw: one bar, its label the current stage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def stage_bar(console: Console, label_width: int = 28) -> Iterator[Callable[[str, float], None]]:
    """Yield a `progress(stage, fraction)` callback that drives a rich bar."""
    columns = (
        TextColumn(f"{{task.description:<{label_width}}}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=1.0)
        yield lambda stage, fraction: bar.update(task, description=stage, completed=fraction)
