"""report.html and report.pdf as a reader sees them, in a real headless Chromium.

Needs Debian's chromium and tesseract-ocr (`make test` installs both); a missing
one fails these tests rather than skipping them.
"""

from __future__ import annotations

import colorsys
import os
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image
from pypdf import PdfReader

from chaoscert.errors import ChaoscertError, MissingProgramError, ReportError
from chaoscert.report import render_report
from chaoscert.report.charts import FAILED_COLOUR, OK_COLOUR
from chaoscert.report.pdf import (
    CHROMIUM_ENV,
    Box,
    find_chromium,
    open_report,
    render_pdf,
    screenshot,
)
from tests.unit.test_report import TIER1, TIER3, probe, scenario, start

SCREEN = (1366, 768)
A4_PT = (595.28, 841.89)
OCR_TIMEOUT_S = 120
SCENARIOS = (
    "dispatch survives a primary hang",  # fails tier 1: down 41 s, limit 30 s
    "scanning survives a quick failover",  # passes: down 8 s
)


@pytest.fixture(scope="module")
def chromium() -> Path:
    try:
        return find_chromium()
    except MissingProgramError as exc:
        pytest.fail(f"the browser tests need Chromium: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def tesseract() -> str:
    found = shutil.which("tesseract")
    if found is None:
        pytest.fail(
            "tesseract (Debian package tesseract-ocr) is not installed; these tests"
            " read the report's screenshots with it. `make test` installs it, or"
            " as root: apt-get install -y tesseract-ocr",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of a run with a failed and a passed scenario."""
    writer = start(tmp_path_factory.mktemp("browser"))
    failed = probe("dispatch", 22.0, 63.0) + probe("invoice_posting", 22.0, 30.0)
    writer.add_scenario(
        scenario(SCENARIOS[0], failed, {"dispatch": TIER1, "invoice_posting": TIER3}),
        failed,
    )
    passed = probe("dispatch", 22.0, 30.0)
    writer.add_scenario(scenario(SCENARIOS[1], passed, {"dispatch": TIER1}), passed)
    writer.finish()
    return render_report(writer.run_dir)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary directory of its own, to see what the browser leaves in it."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield scratch


def ocr(tesseract: str, png: Path) -> str:
    done = subprocess.run(
        [tesseract, str(png), "stdout"],
        capture_output=True,
        text=True,
        timeout=OCR_TIMEOUT_S,
        check=True,
    )
    return " ".join(done.stdout.split())


def pdf_text(page_text: str) -> str:
    # NFKC undoes the ligatures Chromium prints ("ﬂoor" is "floor").
    return " ".join(unicodedata.normalize("NFKC", page_text).split())


def colour_pixels(image: Image.Image, box: Box, hex_colour: str) -> int:
    """Pixels of ``image`` inside ``box`` of the hue of ``hex_colour`` and at
    least half its saturation and brightness: its marks, even where the chart's
    translucent bands tint them, but not the pale bands themselves."""
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    hue, saturation, value = colorsys.rgb_to_hsv(*rgb)
    area = image.convert("RGB").crop(
        (int(box.x), int(box.y), int(box.x + box.width), int(box.bottom))
    )
    data = area.convert("HSV").tobytes()
    count = 0
    for i in range(0, len(data), 3):
        h, s, v = data[i] / 255, data[i + 1] / 255, data[i + 2] / 255
        near = min(abs(h - hue), 1 - abs(h - hue)) <= 0.04
        count += near and s >= saturation / 2 and v >= value / 2
    return count


def visible(box: Box, height: int) -> Box:
    top, bottom = max(box.y, 0.0), min(box.bottom, float(height))
    return Box(box.x, top, box.width, max(bottom - top, 0.0))


@pytest.mark.usefixtures("chromium")
def test_first_screen_shows_the_verdict(
    report: Path, tmp_path: Path, tesseract: str
) -> None:
    png = screenshot(report, tmp_path / "first-screen.png", *SCREEN)
    with open_report(report, *SCREEN) as page:
        verdict = page.box("verdict")

    with Image.open(png) as image:
        assert image.size == SCREEN, f"the screenshot is {image.size}, not {SCREEN}"
    assert verdict.y >= 0 and verdict.bottom <= SCREEN[1], (
        f"the verdict section spans {verdict.y:.0f} to {verdict.bottom:.0f} px;"
        f" expected it within the first screen of {SCREEN[1]} px"
    )
    text = ocr(tesseract, png)
    assert "NOT CERTIFIED" in text, f"no NOT CERTIFIED on the first screen: {text}"
    assert "Tier 1 (the warehouse floor)" in text, (
        f"the failing tier's heading is not on the first screen: {text}"
    )


@pytest.mark.usefixtures("chromium")
def test_scenario_screen_shows_its_timeline_chart(report: Path, tmp_path: Path) -> None:
    png = screenshot(
        report, tmp_path / "scenario-1.png", *SCREEN, scroll_to="scenario-1"
    )
    # Same browser, same viewport, same scroll: the layout is the screenshot's.
    with open_report(report, *SCREEN) as page:
        page.scroll_to("scenario-1")
        section = page.box("scenario-1")
        chart = page.box("#scenario-1 figure img")
        natural_width = page.evaluate(
            "document.querySelector('#scenario-1 figure img').naturalWidth"
        )

    assert abs(section.y) < 2, f"scenario-1 starts at {section.y:.0f} px, not the top"
    assert natural_width > 0, "the timeline chart's image did not load"
    shown = visible(chart, SCREEN[1])
    assert shown.height >= 100, (
        f"only {shown.height:.0f} px of the timeline chart (at {chart.y:.0f} px) are"
        f" on the scenario's first screen of {SCREEN[1]} px"
    )
    with Image.open(png) as image:
        green = colour_pixels(image, shown, OK_COLOUR)
        red = colour_pixels(image, shown, FAILED_COLOUR)
    assert green >= 200, f"{green} pixels of the chart's green ({OK_COLOUR}) in {png}"
    assert red >= 200, f"{red} pixels of the chart's red ({FAILED_COLOUR}) in {png}"


@pytest.mark.usefixtures("chromium")
def test_pdf_is_a4_with_the_verdict_first_and_a_page_per_scenario(
    report: Path,
) -> None:
    pdf = render_pdf(report)

    assert pdf == report.with_name("report.pdf")
    reader = PdfReader(pdf)
    pages = [pdf_text(page.extract_text()) for page in reader.pages]
    assert len(pages) >= 1 + len(SCENARIOS), f"{len(pages)} pages: {pages}"
    for number, page in enumerate(reader.pages, start=1):
        size = (float(page.mediabox.width), float(page.mediabox.height))
        assert all(abs(got - a4) < 2 for got, a4 in zip(size, A4_PT, strict=True)), (
            f"page {number} is {size[0]:.1f} x {size[1]:.1f} pt, not A4 {A4_PT}"
        )
    assert "NOT CERTIFIED" in pages[0], f"no verdict on page 1: {pages[0]}"
    assert "Tier 1 (the warehouse floor)" in pages[0]
    for number, name in enumerate(SCENARIOS, start=1):
        heading = f"{number}. {name}"
        assert any(page.startswith(heading) for page in pages), (
            f"no page starts with scenario heading {heading!r}"
        )
    images = sum(len(page.images) for page in reader.pages)
    assert images >= len(SCENARIOS), f"{images} images embedded, one chart each"
    assert not list(pdf.parent.glob(".report.pdf.*")), "a temporary file was left"


def test_render_pdf_without_a_browser_says_how_to_get_one(
    report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "no-such-chromium"))
    target = tmp_path / "report.pdf"

    with pytest.raises(ChaoscertError) as raised:
        render_pdf(report, target)

    assert isinstance(raised.value, MissingProgramError)
    message = str(raised.value)
    assert "\n" not in message
    assert CHROMIUM_ENV in message and "no-such-chromium" in message
    assert "apt-get install -y chromium" in message
    assert not target.exists()


def test_find_chromium_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(MissingProgramError, match="Debian package chromium"):
        find_chromium()


def test_a_hung_browser_is_killed_within_the_bound(
    report: Path,
    tmp_path: Path,
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pids = tmp_path / "pids"
    hung = tmp_path / "hung-chromium"
    hung.write_text(
        '#!/bin/sh\necho $$ >> "$PIDS"\nsleep 300 &\necho $! >> "$PIDS"\nwait\n'
    )
    hung.chmod(0o755)
    monkeypatch.setenv(CHROMIUM_ENV, str(hung))
    monkeypatch.setenv("PIDS", str(pids))
    target = tmp_path / "report.pdf"
    target.write_bytes(b"%PDF- the previous print")

    started = time.monotonic()
    with pytest.raises(ReportError) as raised:
        render_pdf(report, target, timeout_s=3)
    took_s = time.monotonic() - started

    message = str(raised.value)
    assert "\n" not in message and "within 3 s" in message, message
    assert took_s < 60, f"render_pdf gave up after {took_s:.0f} s, its bound is 3 s"
    started_pids = [int(line) for line in pids.read_text().split()]
    assert len(started_pids) == 2, "the stand-in did not start its sleeper"
    assert alive_after(started_pids, wait_s=10) == [], "processes were left behind"
    assert target.read_bytes() == b"%PDF- the previous print"
    assert sorted(os.listdir(tmp_path)) == [
        "hung-chromium",
        "pids",
        "report.pdf",
        "tmp",
    ]
    assert list(private_tmp.iterdir()) == [], "the browser's profile was left behind"


def test_a_browser_that_exits_is_reported_with_its_last_words(
    report: Path, tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken-chromium"
    broken.write_text(
        "#!/bin/sh\necho 'error while loading shared libraries' >&2\nexit 127\n"
    )
    broken.chmod(0o755)
    monkeypatch.setenv(CHROMIUM_ENV, str(broken))

    with pytest.raises(ReportError) as raised:
        render_pdf(report, tmp_path / "report.pdf")

    assert str(raised.value).startswith(f"Chromium exited while printing {report}")
    assert str(raised.value).endswith("error while loading shared libraries")
    assert not (tmp_path / "report.pdf").exists()
    assert list(private_tmp.iterdir()) == []


@pytest.mark.usefixtures("chromium")
def test_scrolling_to_an_element_that_is_not_there_is_an_error(
    report: Path, tmp_path: Path
) -> None:
    png = tmp_path / "nowhere.png"

    with pytest.raises(ReportError, match="no element 'section#nowhere'"):
        screenshot(report, png, scroll_to="section#nowhere")

    assert not png.exists()


def alive_after(pids: list[int], wait_s: float) -> list[int]:
    """The pids still running (zombies count as gone) once ``wait_s`` has passed
    or all have gone."""
    until = time.monotonic() + wait_s
    while True:
        alive = [pid for pid in pids if running(pid)]
        if not alive or time.monotonic() > until:
            return alive
        time.sleep(0.1)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
