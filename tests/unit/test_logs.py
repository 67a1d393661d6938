"""Component log excerpts: what was written during a scenario, kept short."""

from __future__ import annotations

from pathlib import Path

from chaoscert.platforms.logs import (
    MAX_READ_BYTES,
    excerpt,
    excerpts_since,
    file_marks,
    read_since,
)


def test_heartbeat_lines_that_differ_only_in_numbers_collapse() -> None:
    lines = [
        f"2026-12-04 04:52:{s:02d},404 INFO: no action. I am (b1), a secondary"
        for s in range(30)
    ] + ["2026-12-04 04:53:00,001 INFO: promoted self to leader by acquiring lock"]

    kept, omitted = excerpt(lines)

    assert kept == [
        lines[0],
        "  (the line above repeated 29 more times)",
        lines[-1],
    ]
    assert omitted == 0


def test_a_long_log_keeps_its_head_and_tail_and_counts_the_rest() -> None:
    lines = [f"event {chr(65 + i % 26)}{'x' * (i % 7)}" for i in range(500)]

    kept, omitted = excerpt(lines, max_lines=20)

    assert kept[:10] == lines[:10]
    assert kept[-10:] == lines[-10:]
    assert kept[10] == f"  ({omitted} lines left out)"
    assert omitted == 480


def test_only_what_was_written_after_the_mark_is_read(tmp_path: Path) -> None:
    log = tmp_path / "patroni.log"
    log.write_text("before the scenario\n")
    marks = file_marks([log, tmp_path / "missing.log"])
    with log.open("a") as handle:
        handle.write("leader changed\nsteady again\n")

    assert marks == {str(log): len("before the scenario\n")}
    assert read_since(log, marks[str(log)]) == ["leader changed", "steady again"]


def test_a_replaced_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    log.write_text("x" * 1000 + "\n")
    marks = file_marks([log])
    log.write_text("restarted\n")

    assert read_since(log, marks[str(log)]) == ["restarted"]


def test_a_huge_log_is_read_only_from_its_end(tmp_path: Path) -> None:
    log = tmp_path / "haproxy.log"
    line = "y" * 99 + "\n"
    log.write_text(line * (MAX_READ_BYTES // 100 + 500) + "the end\n")

    lines = read_since(log, 0)

    assert lines[-1] == "the end"
    assert all(len(item) == 99 for item in lines[:-1])  # no torn first line
    assert len(lines) <= MAX_READ_BYTES // 100 + 1


def test_excerpts_leave_out_quiet_components(tmp_path: Path) -> None:
    quiet, busy = tmp_path / "quiet.log", tmp_path / "busy.log"
    quiet.write_text("old\n")
    busy.write_text("")
    marks = file_marks([quiet, busy])
    busy.write_text("a new line\n")

    [text] = excerpts_since(marks, [("quiet on a1", quiet), ("busy on b1", busy)])

    assert text.component == "busy on b1"
    assert text.lines == ("a new line",)
    assert text.source == str(busy)
