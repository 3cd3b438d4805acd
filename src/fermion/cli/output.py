"""What the API-client commands share: one console, JSON output, tables, progress over many."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
JSON_OPT = typer.Option(False, "--json", help="Print JSON.")

T = TypeVar("T")
R = TypeVar("R")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_result(data: Any, as_json: bool, line: str) -> None:
    """A command's result: ``data`` as JSON for scripts (--json), else ``line`` for people."""
    if as_json:
        print_json(data)
    else:
        console.print(line)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, col in enumerate(columns):
        # The first column is an id people copy: never cut it.
        t.add_column(col, no_wrap=i == 0, min_width=24 if col == "id" else None)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def print_table(
    data: Any,
    as_json: bool,
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """A listing: ``data`` as JSON for scripts (--json), else a table of ``rows`` for people."""
    if as_json:
        print_json(data)
    else:
        table(title, columns, rows)


def over_many(items: Sequence[T], label: str, work: Callable[[T], R], quiet: bool) -> list[R]:
    """Run ``work`` on each item with a progress bar on stderr (none for one item or --json)."""
    if quiet or len(items) <= 1:
        return [work(item) for item in items]
    results: list[R] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=len(items))
        for item in items:
            results.append(work(item))
            progress.advance(task)
    return results
