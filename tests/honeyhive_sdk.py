"""The real HoneyHive SDK from PyPI, in a venv of its own, and programs run with it.

The venv is made once per SDK version under ``tests/.venvs`` (git-ignored) and reused by later
runs; a file lock keeps two pytest workers from building it at the same time.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

HONEYHIVE_VERSION = "1.7.0"
VENVS = Path(__file__).parent / ".venvs"
# Levels at which the SDK reports a problem; it logs JSON lines with a "level" on stdout.
PROBLEM_LEVELS = ("WARNING", "ERROR", "CRITICAL")


def honeyhive_python(version: str = HONEYHIVE_VERSION) -> Path:
    """The python of a venv holding ``honeyhive==version``, made on first use."""
    venv = VENVS / f"honeyhive-{version}"
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    VENVS.mkdir(exist_ok=True)
    with open(VENVS / f"honeyhive-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, f"honeyhive=={version}"], check=True, capture_output=True)
            ready.write_text(version)
    return python


def with_packages(python: Path, *requirements: str) -> Path:
    """``python``'s venv (from :func:`honeyhive_python`) with ``requirements`` added, once."""
    venv = python.parent.parent
    marker = venv / (".with-" + "-".join(sorted(r.replace("/", "_") for r in requirements)))
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, *requirements], check=True, capture_output=True)
            marker.write_text("\n".join(requirements))
    return python


@dataclass
class Run:
    stdout: str
    stderr: str
    problems: list[dict]  # what the SDK logged at WARNING or above

    @property
    def printed(self) -> list[str]:
        """What the program printed itself (not the SDK's JSON log lines)."""
        return [line for line in self.stdout.splitlines() if not _log_record(line)]


def _log_record(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "level" in record and "logger" in record else None


def run_program(python: Path, source: str, env: dict[str, str], workdir: Path, name: str = "program") -> Run:
    """Run ``source`` as the script ``<name>.py`` with only the given HoneyHive settings (any
    ``HH_*`` / ``HONEYHIVE_*`` of the calling environment is dropped)."""
    script = workdir / f"{name}.py"
    script.write_text(textwrap.dedent(source))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HH_", "HONEYHIVE_"))}
    done = subprocess.run(
        [str(python), str(script)], env={**clean, **env}, cwd=workdir, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    records = [r for r in map(_log_record, done.stdout.splitlines()) if r is not None]
    return Run(done.stdout, done.stderr, [r for r in records if r["level"] in PROBLEM_LEVELS])
