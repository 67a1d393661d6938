"""The end of every run: history, report.html, redaction, report.pdf.

The Gherkin suite and the Chaos Toolkit extension both finish a run here, so
a run directory looks the same whichever drove it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from chaoscert.errors import ChaoscertError
from chaoscert.history import record_run
from chaoscert.report.html import render_report
from chaoscert.results import load_results, redact_tree

log = logging.getLogger(__name__)

PDF_FILE = "report.pdf"


@dataclass(frozen=True)
class Published:
    """Where the report went; ``pdf`` is None when it could not be printed,
    and ``pdf_problem`` then says why in one line."""

    html: Path
    pdf: Path | None
    pdf_problem: str = ""


def publish_run(
    run_dir: Path,
    history: Path | None,
    secrets: list[str] | None = None,
    pdf: bool = True,
) -> Published:
    """Add the run to ``history`` (when given), render report.html with the
    trend, replace any secret value that reached the run's text files, then
    print report.pdf from the redacted report. A history or PDF problem is
    logged and said, never allowed to lose the results or the HTML report."""
    if history is not None:
        try:
            record_run(history, load_results(run_dir))
        except ChaoscertError as exc:
            log.error("the run was not added to the history: %s", exc)
    html = render_report(run_dir, history)
    redact_tree(run_dir, secrets or [])
    if not pdf:
        return Published(html, None, "not asked for")
    try:
        from chaoscert.report.pdf import render_pdf

        printed = render_pdf(html, run_dir / PDF_FILE)
    except ChaoscertError as exc:
        log.error("report.pdf was not written: %s", exc)
        return Published(html, None, str(exc))
    return Published(html, printed)
