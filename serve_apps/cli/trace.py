"""``salesboost trace``: where a turn's time went, from the file exporter's spans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def trace(
    session_id: Annotated[str, typer.Argument(help="The training session's id.")],
    turn: Annotated[
        int | None, typer.Option(min=0, help="The turn's sequence number; default: every turn.")
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="The span files' folder; default: <data dir>/traces."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The spans as JSON instead of a waterfall.")
    ] = False,
) -> None:
    """A turn's spans as a waterfall: each span's start and duration on the turn's time axis
    (the file exporter writes them; tracing must be on with the file exporter)."""
    from serve_apps.telemetry.span_files import read_spans, render_waterfall, turn_traces

    if folder is None:
        from serve_apps.settings import get_settings

        folder = get_settings().data_dir / "traces"
    if not folder.is_dir():
        typer.echo(
            f"error: no span folder {folder}: tracing off, or the file exporter writes "
            "elsewhere (--dir)",
            err=True,
        )
        raise typer.Exit(1)
    trees = turn_traces(read_spans(folder), session_id, turn)
    if not trees:
        which = f"session {session_id}" + (f" turn {turn}" if turn is not None else "")
        typer.echo(
            f"error: no trace for {which} in {folder}: tracing off, not sampled, or not "
            "flushed yet (half a second)",
            err=True,
        )
        raise typer.Exit(1)
    if as_json:
        turns = [
            {
                "trace_id": tree.trace_id,
                "session_id": tree.session_id,
                "turn_seq": tree.turn_seq,
                "spans": [
                    {**node.span.model_dump(), "depth": depth, "orphan": node.orphan}
                    for node, depth in tree.walk()
                ],
            }
            for tree in trees
        ]
        typer.echo(json.dumps(turns, indent=2))
        return
    typer.echo("\n\n".join(render_waterfall(tree) for tree in trees))
