"""What the three benchmarks share: the machine's description, the results file, a tracehive
server process, peer venvs, memory readings and percentiles.

Benchmarks are run by hand (``python bench/<name>.py``), never as timed tests.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
VENVS = BENCH_DIR / ".venvs"  # git-ignored: one venv per peer, reused across runs
DATA = BENCH_DIR / ".data"  # git-ignored: server data folders, the query benchmark's cached file
ADMIN_KEY = "th-bench-admin-key"


def machine() -> str:
    """Cores, memory, CPU model and Python: the context every figure needs."""
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    model = cpu.group(1).strip() if cpu else platform.processor() or "unknown CPU"
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.1f} GiB memory, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end of the run"
    )


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md; the other sections stay as they are."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{start}\n## {title}\n\nRun {stamp} on {machine()}.\n\n{body.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)} (section {name!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen) -> None:
    """Wait until ``url`` answers (any status below 500), or fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Server:
    """A server process on a loopback port."""

    url: str
    process: subprocess.Popen
    log: Path

    def processes(self) -> list[int]:
        """The server and every process it started (tracehive's ingest workers, for one)."""
        return [self.process.pid, *descendants(self.process.pid)]

    def peak_rss_mb(self) -> float:
        """The sum of each process's own peak: an upper bound, as pages they share count twice."""
        return sum(proc_memory_mb(pid, "VmHWM") for pid in self.processes())

    def rss_mb(self) -> float:
        return sum(proc_memory_mb(pid, "VmRSS") for pid in self.processes())

    def cpu_seconds(self) -> float:
        """User plus system time of the server's processes so far (all their threads)."""
        return sum(proc_cpu_seconds(pid) for pid in self.processes())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def tracehive_python() -> Path:
    """The python of ``bench/.venvs/tracehive``: this checkout installed with its own dependencies
    only, as a user's ``pip install`` has it, like each peer in its venv. The developer's venv may
    hold more (the test extras bring pandas through chDB, which pyarrow then imports in every
    process, 50 MB each). A changed dependency list in pyproject.toml reinstalls."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return venv("tracehive", "-e", str(ROOT), *project["dependencies"])


def start_tracehive(data_dir: Path, log_name: str = "tracehive.log") -> Server:
    """``tracehive serve`` from this checkout (in its bench venv), with the bench's admin key and any
    options in the environment variable ``BENCH_SERVER_ARGS`` (to compare settings, such as
    ``--ingest-workers 1``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data_dir.parent / log_name
    process = subprocess.Popen(
        [str(tracehive_python()), "-m", "tracehive", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--api-key", ADMIN_KEY, *os.environ.get("BENCH_SERVER_ARGS", "").split()],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/v1/health", 60, process)
    return Server(url, process, log)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int, field: str) -> float:
    """A memory figure of a process from /proc (VmRSS now, VmHWM the peak), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024


def venv(name: str, *requirements: str) -> Path:
    """The python of ``bench/.venvs/<name>``, made and filled on first use (a peer is never a
    project dependency). A marker file records what was installed, so a changed pin reinstalls."""
    root = VENVS / name
    python = root / "bin" / "python"
    marker = root / ".bench-installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing {' '.join(requirements)} into {root.relative_to(ROOT)} (first run only)...")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements], check=True)
    marker.write_text(wanted)
    return python


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (fraction in 0..1)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    """A Markdown table, also readable when printed."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
