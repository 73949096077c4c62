"""Third-party instrumentors in venvs of their own, and a small OpenAI-compatible fake to call.

Each venv is made once under ``tests/.venvs`` (git-ignored) and reused; a file lock keeps two pytest
workers from building one at the same time. Packages that pin different OpenTelemetry semantic
convention versions get separate venvs.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VENVS = Path(__file__).parent / ".venvs"
OTEL = ["opentelemetry-sdk>=1.30", "opentelemetry-exporter-otlp-proto-http>=1.30"]
OPENAI = "openai>=1.40"
# name -> what it holds
VENV_PACKAGES: dict[str, list[str]] = {
    # Also what tracehive's SDK needs, which runs from the source tree (PYTHONPATH) in test (a).
    "openinference": [OPENAI, "openinference-instrumentation-openai>=0.1.66", *OTEL, "httpx>=0.27", "orjson>=3.9"],
    "openllmetry": [OPENAI, "opentelemetry-instrumentation-openai>=0.62", *OTEL],
    "otel-genai": [
        OPENAI,
        "opentelemetry-instrumentation-openai-v2==2.4b0",
        "opentelemetry-util-genai==1.0b0",
        "httpx",
        *OTEL,
    ],
    "honeyhive-openinference": ["honeyhive==1.7.0", OPENAI, "openinference-instrumentation-openai>=0.1.66"],
    # The peers' own SDKs, which install side by side (docs/langfuse.md, docs/phoenix.md,
    # docs/mlflow.md); mlflow-tracing exports OTLP only with OpenTelemetry's HTTP exporter beside it.
    "peers": [
        "langfuse>=5.0.4,<6",
        "arize-phoenix-otel>=0.17",
        "openinference-instrumentation-openai>=0.1.66",
        "mlflow-tracing>=3.17",
        OPENAI,
        *OTEL,
    ],
}


def venv_python(name: str) -> Path:
    """The python of the venv ``name`` (see VENV_PACKAGES), made on first use."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    VENVS.mkdir(exist_ok=True)
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, *VENV_PACKAGES[name]], check=True, capture_output=True)
            ready.write_text("\n".join(VENV_PACKAGES[name]))
    return python


def run_python(python: Path, source: str, env: dict[str, str], workdir: Path, name: str = "program") -> str:
    """Run ``source`` as a script with exactly ``env`` (plus PATH); returns what it printed."""
    script = workdir / f"{name}.py"
    script.write_text(textwrap.dedent(source))
    done = subprocess.run([str(python), str(script)], env=env, cwd=workdir, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_sdk(venv: str, source: str, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """Run ``source`` with the python of ``venv`` and only ``env`` (plus PATH); it must succeed.
    Returns the finished process, for what it printed and logged."""
    command = [str(venv_python(venv)), "-c", textwrap.dedent(source), *argv]
    env = {"PATH": os.environ["PATH"], **env}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


# --- a fake OpenAI-compatible server ------------------------------------------------------------

FAKE_MODEL = "gpt-4o-mini-2024-07-18"
FAKE_USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
FAKE_TOOL_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(request)  # type: ignore[attr-defined]
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        # The first turn asks for a tool; once a tool result is in the conversation, answer in text.
        answered = any(m.get("role") == "tool" for m in request.get("messages", []))
        message = (
            {"role": "assistant", "content": "It is sunny in Paris."}
            if answered
            else {"role": "assistant", "content": None, "tool_calls": [FAKE_TOOL_CALL]}
        )
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": FAKE_MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop" if answered else "tool_calls"}],
            "usage": FAKE_USAGE,
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI:
    """A chat-completions endpoint on loopback that answers with usage and, first, a tool call."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
