"""``tracehive`` commands that act on a running server's data: export, users erase, privacy, audit.
Each takes ``--url`` and ``--api-key`` (or ``TRACEHIVE_URL`` / ``TRACEHIVE_API_KEY``); only an
admin key or the project's own key may use them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tracehive.client import DEFAULT_URL, Client, ServerError

console = Console(stderr=True)
users_app = typer.Typer(help="A project's end users.", no_args_is_help=True)
privacy_app = typer.Typer(help="A project's redaction rules and retention.", no_args_is_help=True)
PARQUET_BATCH = 10_000

Url = Annotated[str, typer.Option("--url", envvar="TRACEHIVE_URL", help="The server.")]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="TRACEHIVE_API_KEY", help="Admin or project key.")]
Project = Annotated[str, typer.Option("--project", help="The project.")]


def _client(url: str, api_key: str | None) -> Client:
    if not api_key:
        console.print("[red]an API key is needed: --api-key or TRACEHIVE_API_KEY[/]")
        raise typer.Exit(2)
    return Client(url, api_key)


def _fail(exc: ServerError) -> typer.Exit:
    console.print(f"[red]{escape(str(exc))}[/]")
    return typer.Exit(1)


def export(
    project: Project,
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    format: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    filter: Annotated[str | None, typer.Option("--filter", help="A filter, as in the API.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Sessions that started at or after.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Sessions that started before.")] = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Write every event of the selected sessions, with its session's fields, one per line or row.
    Streams: memory stays flat whatever the size. A person's own data: --filter 'user_properties.user_id = "X"'."""
    if format not in ("jsonl", "parquet"):
        console.print(f"[red]--format: jsonl or parquet, got {escape(format)!r}[/]")
        raise typer.Exit(2)
    client = _client(url, api_key)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} events"),
               TimeElapsedColumn())  # fmt: skip
    with client, Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"exporting {project}", total=None)
        rows = client.events(filter=filter, project=project, from_=from_, to=to)
        try:
            write = _write_parquet if format == "parquet" else _write_jsonl
            count = write(out, rows, lambda n: progress.advance(task, n))
        except ServerError as exc:
            raise _fail(exc) from None
    console.print(f"wrote {count:,} events to {escape(str(out))}")


def _write_jsonl(out: Path, rows: Iterator[dict[str, Any]], advance) -> int:
    count = 0
    with out.open("wb") as file:
        for row in rows:
            file.write(orjson.dumps(row) + b"\n")
            count += 1
            if count % 1000 == 0:
                advance(1000)
    advance(count % 1000)
    return count


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_parquet(out: Path, rows: Iterator[dict[str, Any]], advance) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tracehive.privacy.export import schema_of, to_arrow

    writer, count = None, 0
    try:
        for batch in _batches(rows, PARQUET_BATCH):
            if writer is None:
                writer = pq.ParquetWriter(out, schema_of(batch))
            writer.write_table(to_arrow(batch, writer.schema))
            count += len(batch)
            advance(len(batch))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # nothing selected: still a file to read back
        pq.write_table(pa.table({}), out)
    return count


@users_app.command("erase")
def erase(
    project: Project,
    user_id: Annotated[str, typer.Option("--user-id", help="The user's user_properties.user_id.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Erase every session and event of one user, from the store and its files; audit-logged."""
    with _client(url, api_key) as client:
        try:
            done = client.erase_user(project, user_id)
        except ServerError as exc:
            raise _fail(exc) from None
    console.print(f"erased {done['sessions']} sessions and {done['events']} events (erase {done['erase_id']})")


@privacy_app.command("show")
def show(project: Project, url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Print the project's current settings as JSON."""
    with _client(url, api_key) as client:
        try:
            print(json.dumps(client.privacy(project), indent=2))
        except ServerError as exc:
            raise _fail(exc) from None


@privacy_app.command("set")
def set_(
    project: Project,
    rules: Annotated[
        str | None, typer.Option("--rules", help="Redaction rules: a JSON list, or @file.json; '[]' for none.")
    ] = None,
    retention_days: Annotated[float | None, typer.Option("--retention-days", help="Keep sessions this long.")] = None,
    keep_forever: Annotated[bool, typer.Option("--keep-forever", help="Remove the retention.")] = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Save a new version of the project's settings; what is not given keeps its value."""
    changes: dict[str, Any] = {}
    if rules is not None:
        text = Path(rules[1:]).read_text() if rules.startswith("@") else rules
        try:
            changes["redact"] = json.loads(text)
        except ValueError as exc:
            console.print(f"[red]--rules: not JSON: {escape(str(exc))}[/]")
            raise typer.Exit(2) from None
    if retention_days is not None or keep_forever:
        changes["retention_days"] = None if keep_forever else retention_days
    with _client(url, api_key) as client:
        try:
            print(json.dumps(client.set_privacy(project, **changes), indent=2))
        except ServerError as exc:
            raise _fail(exc) from None


def audit(project: Annotated[str | None, typer.Option("--project")] = None, url: Url = DEFAULT_URL,
          api_key: ApiKey = None) -> None:  # fmt: skip
    """Print the audit log (settings changes, erasures, retention), newest first, one JSON per line."""
    with _client(url, api_key) as client:
        try:
            for entry in client.audit(project):
                print(json.dumps(entry))
        except ServerError as exc:
            raise _fail(exc) from None


def register(app: typer.Typer) -> None:
    app.command()(export)
    app.command()(audit)
    app.add_typer(users_app, name="users")
    app.add_typer(privacy_app, name="privacy")
