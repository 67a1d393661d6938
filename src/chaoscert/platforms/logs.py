"""Short excerpts of what components logged while a scenario ran.

A platform marks where each log stands when a scenario starts and, at its end,
hands back what was written since: repeated heartbeat lines collapsed, long
logs cut to their head and tail, so the evidence stays readable and small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 60
MAX_LINE_CHARS = 400
# A scenario's share of a log is read from its end, at most this much.
MAX_READ_BYTES = 1 << 20

_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class LogText:
    """What one component logged: ``component`` names it for people (``patroni
    on a1``), ``source`` says where it came from (a path, a pod)."""

    component: str
    source: str
    lines: tuple[str, ...]
    omitted: int = 0


def excerpt(lines: Iterable[str], max_lines: int = MAX_LINES) -> tuple[list[str], int]:
    """Collapse runs of lines that differ only in their numbers (timestamps,
    pids) into the first with a count, then keep the first and last halves of
    ``max_lines``; returns the kept lines and how many were left out."""
    collapsed: list[str] = []
    previous_shape: str | None = None
    repeats = 0
    for raw in lines:
        line = raw.rstrip()
        if not line:
            continue
        line = line[:MAX_LINE_CHARS]
        shape = _DIGITS.sub("#", line)
        if shape == previous_shape:
            repeats += 1
            continue
        if repeats:
            collapsed.append(f"  (the line above repeated {repeats} more times)")
        collapsed.append(line)
        previous_shape, repeats = shape, 0
    if repeats:
        collapsed.append(f"  (the line above repeated {repeats} more times)")

    if len(collapsed) <= max_lines:
        return collapsed, 0
    head = max_lines // 2
    tail = max_lines - head
    omitted = len(collapsed) - max_lines
    return [
        *collapsed[:head],
        f"  ({omitted} lines left out)",
        *collapsed[-tail:],
    ], omitted


def file_marks(paths: Iterable[Path]) -> dict[str, int]:
    """Each file's size now, so what is written later can be read alone."""
    marks = {}
    for path in paths:
        try:
            marks[str(path)] = path.stat().st_size
        except OSError:
            continue
    return marks


def read_since(path: Path, offset: int) -> list[str]:
    """Lines written to ``path`` after ``offset`` (from the start if the file
    was replaced or truncated meanwhile), at most MAX_READ_BYTES of them."""
    try:
        size = path.stat().st_size
        start = offset if 0 <= offset <= size else 0
        start = max(start, size - MAX_READ_BYTES)
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read(size - start)
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if start > offset and lines:
        lines = lines[1:]  # the first line was cut by the read limit
    return lines


def excerpts_since(
    marks: dict[str, int], paths: Sequence[tuple[str, Path]]
) -> list[LogText]:
    """For each ``(component, path)``, what it logged since ``marks``; files
    that logged nothing are left out."""
    out = []
    for component, path in paths:
        kept, omitted = excerpt(read_since(path, marks.get(str(path), 0)))
        if kept:
            out.append(LogText(component, str(path), tuple(kept), omitted))
    return out
