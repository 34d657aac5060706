"""Progress on the terminal for long steps (`callfleet up`, the demo)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["progress_display"]


@contextmanager
def progress_display(console: Console):
    """Progress bars for long steps (model builds) and a status line for the rest."""
    with Progress(
        TextColumn("[bold blue]{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bars:

        def task(description: str):
            task_id = bars.add_task(description, total=1.0, stage="")

            def update(stage: str, fraction: float) -> None:
                bars.update(task_id, completed=fraction, stage=stage)

            return update

        def status(line: str) -> None:
            bars.console.print(f"[dim]·[/dim] {line}")

        yield status, task
