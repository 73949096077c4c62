"""The ``tracehive`` command."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tracehive import cli_privacy
from tracehive.server.app import create_app, open_keys
from tracehive.server.auth import KEYS_FILE, KeyRing, new_key
from tracehive.server.datadir import make_private
from tracehive.server.deps import Settings
from tracehive.server.limits import Limits
from tracehive.server.workers import default_ingest_workers
from tracehive.store.base import QueryBudget
from tracehive.store.duckdb import DEFAULT_MEMORY_MB
from tracehive.store.migrations import SchemaTooNewError

app = typer.Typer(help="tracehive: self-hosted tracing for LLM applications.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: an admin key reads and writes every project, a project key only its own.",
                       no_args_is_help=True)  # fmt: skip
app.add_typer(keys_app, name="keys")
prices_app = typer.Typer(help="Model prices: a project's own price for a model, over the price table.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(prices_app, name="prices")
cli_privacy.register(app)
console = Console(stderr=True)

DEFAULT_PORT = 8418
PUBLIC_WARNING = "reachable from other machines; every request needs a key."
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="TRACEHIVE_DATA_DIR", help="Folder for the DuckDB file and keys [default: ~/.tracehive]."
    ),
]


def default_data_dir() -> Path:
    return Path.home() / ".tracehive"


def wait_healthy(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def reachable_from_elsewhere(host: str) -> bool:
    """Whether listening on ``host`` lets other machines connect: anything but loopback
    (127.0.0.0/8, ::1, localhost). Host names other than localhost count as public, unresolved."""
    if host.lower() in ("localhost", "localhost."):
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True


def run_seed_example(url: str, api_key: str, project: str = "demo") -> int:
    """Run the seed page's program against a server, as a user would, in its own process."""
    env = {**os.environ, "HH_API_KEY": api_key, "HH_API_URL": url, "HH_PROJECT": project}
    return subprocess.call([sys.executable, "-m", "tracehive.examples.seed"], env=env)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the API, OTLP ingest and dashboard.")] = DEFAULT_PORT,
    data_dir: DataDir = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TRACEHIVE_API_KEY", help="An admin key (all projects).")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            envvar="TRACEHIVE_STORE",
            help="Store URL (clickhouse://user:pass@host:8123/db, chdb:///folder); default: DuckDB in --data-dir.",
        ),
    ] = None,
    demo: Annotated[bool, typer.Option(help="Once up, send the seed example's session.")] = False,
    max_body_mb: Annotated[float, typer.Option(help="Largest ingest body accepted (413 past it).")] = 16.0,
    max_ingest_in_flight: Annotated[
        int, typer.Option(min=1, help="Ingest requests handled at once; past it, 503 with Retry-After.")
    ] = 16,
    ingest_workers: Annotated[
        int | None,
        typer.Option(min=0, help="Processes decoding ingest requests; default cores less one (1 to 4); 0 for none."),
    ] = None,
    query_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds one query may run; past it, cancelled and answered 503.")
    ] = QueryBudget().seconds,
    query_memory_mb: Annotated[
        int | None,
        typer.Option(
            min=16,
            help="Memory bound for queries (DuckDB: the whole database, its cache and writes too, "
            f"default {DEFAULT_MEMORY_MB}; ClickHouse: each query, default the server's).",
        ),
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Also take OTLP/gRPC trace exports on this port (e.g. 4317).")
    ] = None,
    housekeeping_seconds: Annotated[
        float, typer.Option(min=0.1, help="How often to remove expired sessions and reload privacy settings.")
    ] = 60.0,
) -> None:
    """Start the server."""
    settings = Settings(
        data_dir=data_dir or default_data_dir(),
        api_key=api_key,
        store_url=store,
        limits=Limits(max_body_bytes=int(max_body_mb * 1024 * 1024)),
        max_ingest_in_flight=max_ingest_in_flight,
        ingest_workers=default_ingest_workers() if ingest_workers is None else ingest_workers,
        query_budget=QueryBudget(query_timeout, query_memory_mb),
        grpc_address=None if grpc_port is None else f"{'[' + host + ']' if ':' in host else host}:{grpc_port}",
        housekeeping_seconds=housekeeping_seconds,
    )
    make_private(settings.data_dir)
    keys, created = open_keys(settings)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(f"[bold]tracehive[/] serving on {escape(url)}  (data: {escape(str(settings.data_dir))})")
    if settings.grpc_address:
        console.print(f"OTLP/gRPC trace ingest on {escape(settings.grpc_address)}")
    if created:
        console.print(f"Admin API key, shown once, keep it: [bold]{created}[/]")
    if reachable_from_elsewhere(host):
        console.print(f"Listening on {host}: {PUBLIC_WARNING}", style="yellow", markup=False)
    if demo:
        demo_key = new_key()
        keys.add_in_memory(demo_key, "demo")
        shown_key = api_key or created or "<your key>"
        threading.Thread(target=_demo, args=(url, demo_key, shown_key), daemon=True).start()
    try:
        application = create_app(settings, keys)
    except (ValueError, SchemaTooNewError) as exc:  # a store URL or schema this tracehive cannot use
        console.print(f"[red]cannot open the store: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level="warning")


def _demo(url: str, key: str, shown_key: str) -> None:
    if not wait_healthy(url):
        console.print("[red]demo: the server did not come up[/]")
        return
    if run_seed_example(url, key) == 0:
        console.print("demo: sent the seed example (project 'demo'). Find it again:")
        console.print(
            f"  curl -s -H 'Authorization: Bearer {shown_key}' -G {url}/api/v1/sessions "
            "--data-urlencode 'filter=user_properties.user_id = \"user_12345\"'",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


@app.command()
def demo(
    url: Annotated[str, typer.Option(envvar="HH_API_URL", help="The server.")] = f"http://127.0.0.1:{DEFAULT_PORT}",
    api_key: Annotated[str, typer.Option(envvar="HH_API_KEY", help="An API key of that server.")] = "",
    project: Annotated[str, typer.Option(envvar="HH_PROJECT")] = "demo",
) -> None:
    """Send the seed example's session to a running server."""
    raise typer.Exit(run_seed_example(url, api_key, project))


def _keyring(data_dir: Path | None) -> KeyRing:
    return KeyRing((data_dir or default_data_dir()) / KEYS_FILE)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")] = "key",
    project: Annotated[str | None, typer.Option(help="Limit the key to this project; none: admin.")] = None,
    langfuse: Annotated[
        bool, typer.Option("--langfuse", help="Make a Langfuse public/secret key pair (needs --project).")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Make a key and print it (only its hash is kept). A running server accepts it at once."""
    make_private(data_dir or default_data_dir())
    if langfuse:
        if project is None:
            console.print("--langfuse needs --project: a Langfuse key pair writes to one project", style="red")
            raise typer.Exit(2)
        public, secret = _keyring(data_dir).create_langfuse_pair(name, project)
        console.print(f"Created Langfuse key pair {name!r} for project {project!r}:", markup=False)
        print(f"LANGFUSE_PUBLIC_KEY={public}")
        print(f"LANGFUSE_SECRET_KEY={secret}")
        return
    key = _keyring(data_dir).create(name, project)
    scope = "admin key" if project is None else f"key for project {project!r}"
    console.print(f"Created {scope} {name!r}:", markup=False)
    print(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List the stored keys (ids and names; the keys themselves are not kept)."""
    table = Table("id", "name", "project", "created", "Langfuse public key")
    for key in _keyring(data_dir).stored():
        shown = (key.key_id, key.name, key.project or "(all: admin)", key.created, key.public_key or "")
        table.add_row(*(escape(text) for text in shown))
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or name (or a Langfuse pair's public key).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key; a running server refuses it at once."""
    removed = _keyring(data_dir).revoke(key)
    if not removed:
        console.print(f"no key with id or name {key!r}", style="red", markup=False)
        raise typer.Exit(1)
    console.print(f"revoked {', '.join(k.key_id for k in removed)}")


ServerUrl = Annotated[str, typer.Option("--url", envvar="TRACEHIVE_URL", help="The server.")]
ApiKey = Annotated[str, typer.Option("--api-key", envvar="TRACEHIVE_API_KEY", help="An admin or project key.")]


def _call(method: str, url: str, key: str, path: str, **kwargs) -> dict:
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", headers={"Authorization": f"Bearer {key}"},
                                 timeout=30.0, **kwargs)  # fmt: skip
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {escape(url)}: {escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        console.print(f"[red]{response.status_code}: {escape(response.text)}[/]")
        raise typer.Exit(1)
    return response.json()


@prices_app.command("set")
def prices_set(
    project: Annotated[str, typer.Argument(help="The project.")],
    model: Annotated[str, typer.Argument(help="The model name as events carry it (config.model).")],
    input_mtok: Annotated[float, typer.Option("--input", min=0, help="USD per million input tokens.")],
    output_mtok: Annotated[float, typer.Option("--output", min=0, help="USD per million output tokens.")],
    cache_read: Annotated[float | None, typer.Option(min=0, help="USD per million cached input tokens read.")] = None,
    cache_write: Annotated[float | None, typer.Option(min=0, help="USD per million input tokens cached.")] = None,
    url: ServerUrl = f"http://127.0.0.1:{DEFAULT_PORT}",
    api_key: ApiKey = "",
) -> None:
    """Set a project's price for a model (new model events of the project are costed with it)."""
    body = {"input_mtok": input_mtok, "output_mtok": output_mtok, "cache_read_mtok": cache_read,
            "cache_write_mtok": cache_write}  # fmt: skip
    saved = _call("PUT", url, api_key, f"/api/v1/prices/{quote(project, safe='')}/{quote(model, safe='')}", json=body)
    console.print(f"{escape(saved['project'])} / {escape(saved['model'])}: ${saved['input_mtok']} in, "
                  f"${saved['output_mtok']} out per million tokens", markup=False)  # fmt: skip


@prices_app.command("unset")
def prices_unset(
    project: Annotated[str, typer.Argument()],
    model: Annotated[str, typer.Argument()],
    url: ServerUrl = f"http://127.0.0.1:{DEFAULT_PORT}",
    api_key: ApiKey = "",
) -> None:
    """Remove a project's price for a model (the price table applies again)."""
    _call("DELETE", url, api_key, f"/api/v1/prices/{quote(project, safe='')}/{quote(model, safe='')}")


@prices_app.command("list")
def prices_list(url: ServerUrl = f"http://127.0.0.1:{DEFAULT_PORT}", api_key: ApiKey = "") -> None:
    """Each project's own prices, then the models seen without any price."""
    table = Table("project", "model", "input $/Mtok", "output $/Mtok", "cache read", "cache write")
    columns = ("project", "model", "input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    for row in _call("GET", url, api_key, "/api/v1/prices")["prices"]:
        table.add_row(*(escape(str(row[k])) if row[k] is not None else "" for k in columns))
    Console().print(table)
    missing = Table("project", "model without a price", "provider", "calls", "last seen")
    for row in _call("GET", url, api_key, "/api/v1/models/unpriced")["models"]:
        missing.add_row(*(escape(str(row[k] or "")) for k in ("project", "model", "provider", "calls", "last_seen")))
    Console().print(missing)
