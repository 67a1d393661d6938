"""The HTML report of a run: one self-contained file with inline charts."""

from chaoscert.report.html import render_report

__all__ = ["render_report"]
