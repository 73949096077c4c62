"""The ``tracehive`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
import uvicorn
from rich.console import Console

from tracehive.server.app import create_app, open_keys
from tracehive.server.auth import new_key
from tracehive.server.deps import Settings

app = typer.Typer(help="tracehive: self-hosted tracing for LLM applications.", no_args_is_help=True)
console = Console(stderr=True)

DEFAULT_PORT = 8418
LOOPBACK = ("127.0.0.1", "localhost", "::1")
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
        str | None, typer.Option(envvar="TRACEHIVE_STORE", help="Store URL; default: DuckDB in --data-dir.")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Once up, send the seed example's session.")] = False,
) -> None:
    """Start the server."""
    settings = Settings(data_dir=data_dir or default_data_dir(), api_key=api_key, store_url=store)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keys, created = open_keys(settings)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(f"[bold]tracehive[/] serving on {url}  (data: {settings.data_dir})")
    if created:
        console.print(f"Admin API key, shown once, keep it: [bold]{created}[/]")
    if host not in LOOPBACK:
        console.print(f"[yellow]Listening on {host}: reachable from other machines; every request needs a key.[/]")
    if demo:
        demo_key = new_key()
        keys.add(demo_key, "demo", persist=False)
        threading.Thread(target=_demo, args=(url, demo_key), daemon=True).start()
    uvicorn.run(create_app(settings, keys), host=host, port=port, log_level="warning")


def _demo(url: str, key: str) -> None:
    if not wait_healthy(url):
        console.print("[red]demo: the server did not come up[/]")
        return
    if run_seed_example(url, key) == 0:
        console.print(
            f"demo: sent the seed example. Try:\n  curl -H 'Authorization: Bearer <key>' "
            f"'{url}/api/v1/sessions?filter=user_properties.user_id%20%3D%20%22user_12345%22'"
        )


@app.command()
def demo(
    url: Annotated[str, typer.Option(envvar="HH_API_URL", help="The server.")] = f"http://127.0.0.1:{DEFAULT_PORT}",
    api_key: Annotated[str, typer.Option(envvar="HH_API_KEY", help="An API key of that server.")] = "",
    project: Annotated[str, typer.Option(envvar="HH_PROJECT")] = "demo",
) -> None:
    """Send the seed example's session to a running server."""
    raise typer.Exit(run_seed_example(url, api_key, project))
