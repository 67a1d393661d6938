"""The report as a PDF for sign-off, and screenshots of it, from headless Chromium.

The browser is the system's (Debian package ``chromium``), driven over its
DevTools protocol on a pipe (``--remote-debugging-pipe``): no driver program and
no browser download. Every wait shares one deadline; when it passes, or when
anything fails, the browser's whole process group is killed and its temporary
profile removed. Every failure is a one-line ``ReportError``, or
``MissingProgramError`` when there is no browser.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import math
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import psutil

from chaoscert.errors import MissingProgramError, ReportError

log = logging.getLogger(__name__)

CHROMIUM_ENV = "CHAOSCERT_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
PDF_FILE = "report.pdf"
A4_IN = (8.27, 11.69)
# The report's own @page rule sets A4 and 14 mm; these only apply without it.
MARGIN_IN = 14 / 25.4
STOP_GRACE_S = 5.0
IO_CHUNK = 1 << 20
# As root and on a closed network, Chromium needs all of these or it hangs
# trying to reach Google, a GPU or its sandbox.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--remote-debugging-pipe",
)
# The element ``target`` names: an element id first, else a CSS selector.
_FIND_JS = """((target) => {
  const byId = document.getElementById(target);
  if (byId) return byId;
  try { return document.querySelector(target); } catch (e) { return null; }
})(%s)"""
_SETTLED_JS = """Promise.all([document.fonts.ready,
  ...Array.from(document.images, (img) => img.decode().catch(() => null))])
  .then(() => true)"""


@dataclass(frozen=True)
class Box:
    """An element's border box in CSS pixels, relative to the viewport's top left."""

    x: float
    y: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.y + self.height


def find_chromium() -> Path:
    """The Chromium to print with: ``$CHAOSCERT_CHROMIUM`` (a path or a name on
    PATH), else ``chromium`` or ``chromium-browser`` on PATH."""
    chosen = os.environ.get(CHROMIUM_ENV, "").strip()
    if chosen:
        found = _executable(chosen)
        if found is None:
            raise MissingProgramError(
                f"{CHROMIUM_ENV}={chosen} is not an executable program; unset it"
                " or point it at one (Debian package chromium:"
                " apt-get install -y chromium)"
            )
        return found
    for name in CHROMIUM_NAMES:
        found = _executable(name)
        if found is not None:
            return found
    raise MissingProgramError(
        "chromium (the browser that prints report.pdf; Debian package chromium)"
        " is not installed. As root: apt-get install -y chromium, or set"
        f" {CHROMIUM_ENV} to a Chromium executable"
    )


def render_pdf(
    html_path: Path, pdf_path: Path | None = None, timeout_s: float = 90.0
) -> Path:
    """Print ``html_path`` to an A4 PDF with its backgrounds and print CSS, by
    default ``report.pdf`` next to it, replaced atomically; returns its path.
    Gives up after ``timeout_s`` seconds, plus a few to stop the browser."""
    target = pdf_path or html_path.with_name(PDF_FILE)
    with open_report(
        html_path, timeout_s=timeout_s, doing=f"printing {html_path} to PDF"
    ) as page:
        page.pdf(target)
    log.info("report PDF written to %s", target)
    return target


def screenshot(
    html_path: Path,
    png_path: Path,
    width: int = 1366,
    height: int = 768,
    full_page: bool = False,
    scroll_to: str | None = None,
    timeout_s: float = 90.0,
) -> Path:
    """A PNG of ``html_path`` in a ``width`` x ``height`` CSS-pixel viewport:
    the first screen, the screen that starts at ``scroll_to`` (an element id or
    a CSS selector) or, with ``full_page``, the whole page. Same deadline as
    ``render_pdf``."""
    with open_report(
        html_path, width, height, timeout_s, f"taking a screenshot of {html_path}"
    ) as page:
        if scroll_to is not None:
            page.scroll_to(scroll_to)
        return page.screenshot(png_path, full_page=full_page)


@contextmanager
def open_report(
    html_path: Path,
    width: int = 1366,
    height: int = 768,
    timeout_s: float = 90.0,
    doing: str = "",
) -> Iterator[ReportPage]:
    """``html_path`` loaded, images decoded, in a fresh headless Chromium with a
    ``width`` x ``height`` viewport. Everything done with the page before the
    block ends shares one deadline of ``timeout_s`` seconds from opening."""
    if not html_path.is_file():
        raise ReportError(f"no report to open: {html_path} is not a file")
    browser = _Browser(find_chromium(), timeout_s, doing or f"opening {html_path}")
    try:
        page = ReportPage(browser, html_path, width, height)
        yield page
    except BaseException:
        browser.stop(graceful=False)
        raise
    browser.stop(graceful=True)


class ReportPage:
    """A report open in a headless Chromium; see ``open_report``."""

    def __init__(self, browser: _Browser, html_path: Path, width: int, height: int):
        self._browser = browser
        self.width = width
        self.height = height
        target = browser.call("Target.createTarget", {"url": "about:blank"})
        attached = browser.call(
            "Target.attachToTarget",
            {"targetId": _field(target, "targetId"), "flatten": True},
        )
        self._session = str(_field(attached, "sessionId"))
        self._call("Page.enable")
        self._call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self._call("Emulation.setScrollbarsHidden", {"hidden": True})
        self._load(html_path)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        reply = self._call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = str(
                details.get("exception", {}).get("description")
                or details.get("text", "an exception")
            )
            first = (text.splitlines() or ["an exception"])[0]
            raise ReportError(f"script failed in the report: {first}")
        return _field(reply, "result").get("value")

    def box(self, target: str) -> Box:
        """The box of the element ``target`` names (an id, else a CSS selector)."""
        found = self.evaluate(
            f"(() => {{ const el = {_find(target)}; if (!el) return null;"
            " const r = el.getBoundingClientRect();"
            " return [r.x, r.y, r.width, r.height]; })()"
        )
        if found is None:
            raise ReportError(f"no element {target!r} in the report")
        return Box(*(float(value) for value in found))

    def scroll_to(self, target: str) -> None:
        """Scroll so that the element ``target`` names is at the top."""
        found = self.evaluate(
            f"(() => {{ const el = {_find(target)}; if (!el) return false;"
            " el.scrollIntoView({block: 'start', behavior: 'instant'});"
            " return true; })()"
        )
        if not found:
            raise ReportError(f"no element {target!r} to scroll to in the report")

    def screenshot(self, png_path: Path, full_page: bool = False) -> Path:
        """Write a PNG of the viewport, or of the whole page, to ``png_path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            self.evaluate("window.scrollTo(0, 0)")
            size = _field(self._call("Page.getLayoutMetrics"), "cssContentSize")
            clip = {"x": 0, "y": 0, "width": self.width, "height": size["height"]}
            params.update(captureBeyondViewport=True, clip={**clip, "scale": 1})
        shot = self._call("Page.captureScreenshot", params)
        data = base64.b64decode(_field(shot, "data"))
        _write_atomically(png_path, data)
        log.debug("screenshot of the report written to %s", png_path)
        return png_path

    def pdf(self, pdf_path: Path) -> Path:
        """Print to an A4 PDF (the page's @page rule wins) at ``pdf_path``."""
        width_in, height_in = A4_IN
        reply = self._call(
            "Page.printToPDF",
            {
                "printBackground": True,
                "preferCSSPageSize": True,
                "paperWidth": width_in,
                "paperHeight": height_in,
                **dict.fromkeys(
                    ("marginTop", "marginBottom", "marginLeft", "marginRight"),
                    MARGIN_IN,
                ),
                "transferMode": "ReturnAsStream",
            },
        )
        data = self._read_stream(str(_field(reply, "stream")))
        if not data.startswith(b"%PDF-"):
            raise ReportError("Chromium's print of the report is not a PDF")
        _write_atomically(pdf_path, data)
        return pdf_path

    def _load(self, html_path: Path) -> None:
        url = html_path.resolve().as_uri()
        reply = self._call("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise ReportError(f"Chromium could not open {url}: {reply['errorText']}")
        # A load event may still be about:blank's; the report's is the one
        # after which the document is a file and complete.
        loaded = "location.protocol === 'file:' && document.readyState === 'complete'"
        while True:
            self._browser.wait_event("Page.loadEventFired", self._session)
            if self.evaluate(loaded):
                break
        self.evaluate(_SETTLED_JS)

    def _read_stream(self, handle: str) -> bytes:
        chunks = []
        while True:
            part = self._call("IO.read", {"handle": handle, "size": IO_CHUNK})
            data = str(part.get("data", ""))
            if part.get("base64Encoded"):
                chunks.append(base64.b64decode(data))
            else:
                chunks.append(data.encode("latin-1"))
            if part.get("eof"):
                break
        self._call("IO.close", {"handle": handle})
        return b"".join(chunks)

    def _call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self._browser.call(method, params, self._session)


class _Browser:
    """One headless Chromium process and its DevTools pipe, under one deadline."""

    def __init__(self, executable: Path, timeout_s: float, doing: str):
        self.timeout_s = timeout_s
        self.doing = doing
        self.deadline = time.monotonic() + timeout_s
        self._work = Path(tempfile.mkdtemp(prefix="chaoscert-chromium-"))
        self._log = self._work / "chromium.log"
        self._buffer = bytearray()
        self._events: list[tuple[str, str]] = []
        self._last_id = 0
        self._exited = False
        try:
            self.pid, self._to_browser, self._from_browser = _spawn(
                executable, self._work, self._log
            )
        except BaseException:
            shutil.rmtree(self._work, ignore_errors=True)
            raise
        log.debug("Chromium %s started as pid %d for %s", executable, self.pid, doing)

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str = ""
    ) -> Any:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = session
        self._send(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._last_id:
                break
        if "error" in reply:
            text = reply["error"].get("message", "an error")
            raise ReportError(f"Chromium refused {method} while {self.doing}: {text}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str) -> None:
        while (method, session) not in self._events:
            self._receive()
        self._events.remove((method, session))

    def stop(self, graceful: bool) -> None:
        """Close the browser (politely if ``graceful``), kill what is left of its
        process group, reap it and remove its profile."""
        if graceful and not self._exited:
            self.deadline = time.monotonic() + STOP_GRACE_S
            with suppress(ReportError, OSError):
                self._send(b'{"id": 0, "method": "Browser.close"}\0')
                while True:
                    self._receive()
        # The leader is not reaped yet, so the group id cannot have been reused.
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._reap()
        _kill_strays(self._work)
        for fd in (self._to_browser, self._from_browser):
            with suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._work, ignore_errors=True)
        if self._work.exists():
            log.warning("could not remove Chromium's profile %s", self._work)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._to_browser, select.POLLOUT)
            try:
                view = view[os.write(self._to_browser, view) :]
            except BrokenPipeError:
                self._gone()

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            self._wait(self._from_browser, select.POLLIN)
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._gone()
            self._buffer += chunk
        end = self._buffer.index(b"\0")
        try:
            message: dict[str, Any] = json.loads(self._buffer[:end])
        except ValueError as exc:
            raise ReportError(
                f"Chromium sent a malformed DevTools message while {self.doing}: {exc}"
            ) from exc
        del self._buffer[: end + 1]
        method = message.get("method")
        if method == "Page.loadEventFired":
            self._events.append((method, str(message.get("sessionId", ""))))
        return message

    def _wait(self, fd: int, event: int) -> None:
        # poll, not select: a long run may hold fds past select's limit of 1024.
        poller = select.poll()
        poller.register(fd, event)
        left_s = self.deadline - time.monotonic()
        if left_s <= 0 or not poller.poll(math.ceil(left_s * 1000)):
            self._timed_out()

    def _timed_out(self) -> NoReturn:
        raise ReportError(
            f"Chromium did not finish {self.doing} within {self.timeout_s:g} s;"
            " it was killed"
        )

    def _gone(self) -> NoReturn:
        self._exited = True
        raise ReportError(f"Chromium exited while {self.doing}: {self._last_words()}")

    def _last_words(self) -> str:
        try:
            lines = self._log.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        lines = [line.strip() for line in lines if line.strip()]
        return lines[-1] if lines else "it wrote nothing"

    def _reap(self) -> None:
        # SIGKILL is prompt unless the process is stuck in the kernel; then it
        # stays a zombie rather than block the report.
        until = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < until:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            time.sleep(0.02)
        log.warning("Chromium (pid %d) did not exit after SIGKILL", self.pid)


def _spawn(executable: Path, work: Path, log_path: Path) -> tuple[int, int, int]:
    """Start Chromium in a session of its own, every file it writes under
    ``work``; its ends of the DevTools pipe become fds 3 and 4, as
    ``--remote-debugging-pipe`` expects."""
    to_read, to_write = os.pipe()
    from_read, from_write = os.pipe()
    # Moved above 9 first so that placing them at 3 and 4 cannot clobber either.
    child_in = fcntl.fcntl(to_read, fcntl.F_DUPFD_CLOEXEC, 10)
    child_out = fcntl.fcntl(from_write, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(to_read)
    os.close(from_write)
    argv = [str(executable), *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}"]
    # Crash reports go to the default profile's directory, not --user-data-dir.
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(work / "config"),
        "XDG_CACHE_HOME": str(work / "cache"),
    }
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(log_path), os.O_WRONLY | os.O_CREAT, 0o600),
        (os.POSIX_SPAWN_DUP2, child_in, 3),
        (os.POSIX_SPAWN_DUP2, child_out, 4),
    ]
    try:
        # posix_spawn, not subprocess: moving fds needs no Python code in the
        # child, which is unsafe when the caller has threads (the probes do).
        pid = os.posix_spawn(
            str(executable),
            [*argv, "about:blank"],
            env,
            file_actions=actions,
            setsid=True,
        )
    except OSError as exc:
        for fd in (to_write, from_read):
            os.close(fd)
        raise ReportError(f"could not start Chromium {executable}: {exc}") from exc
    finally:
        os.close(child_in)
        os.close(child_out)
    os.set_blocking(to_write, False)
    return pid, to_write, from_read


def _kill_strays(work: Path) -> None:
    # Chromium's crash handler starts a session of its own, out of reach of
    # killpg; it names the work directory (XDG_CONFIG_HOME) in its arguments.
    for process in psutil.process_iter(["cmdline"]):
        with suppress(psutil.Error):
            if any(str(work) in arg for arg in process.info["cmdline"] or ()):
                process.kill()


def _executable(name: str) -> Path | None:
    if "/" in name:
        path = Path(name)
        return path.absolute() if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(name)
    return Path(found).absolute() if found else None


def _field(reply: dict[str, Any], key: str) -> Any:
    if key not in reply:
        raise ReportError(f"Chromium's DevTools answer lacks {key!r}: {reply}"[:300])
    return reply[key]


def _find(target: str) -> str:
    return _FIND_JS % json.dumps(target)


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise ReportError(f"could not write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes files only their owner can read; reports are for all.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"could not write {path}: {exc.strerror}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
