"""Print every convention's table as Markdown (``python -m tracehive.server.conventions``): the
section of docs/llm-calls.md between its markers is this output, and a test keeps them equal."""

from __future__ import annotations

from tracehive.server.conventions import CONVENTIONS
from tracehive.server.conventions.base import DROP


def markdown() -> str:
    lines: list[str] = []
    for convention in CONVENTIONS:
        lines += [f"### {convention.name}", "", "| key | goes to | what |", "| --- | --- | --- |"]
        for row in convention.keys:
            lines.append(f"| `{row.key}` | {_target(row.target)} | {row.doc} |")
        for prefix in convention.prefixes:
            lines.append(f"| `{prefix.prefix}*` | {_target(prefix.target)} | {prefix.doc} |")
        lines.append("")
    return "\n".join(lines)


def _target(target: str) -> str:
    return "(dropped)" if target == DROP else f"`{target}`"


if __name__ == "__main__":
    print(markdown(), end="")
