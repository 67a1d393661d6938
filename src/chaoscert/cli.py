"""The `chaoscert` command."""

from __future__ import annotations

import argparse
import io
import logging
import math
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from chaoscert.errors import ChaoscertError, ConfigError
from chaoscert.platforms import KNOWN as KNOWN_PLATFORMS
from chaoscert.platforms.base import FaultRegistry
from chaoscert.platforms.local import health
from chaoscert.platforms.local.layout import default_state_dir
from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.platforms.local.stack import LocalStack
from chaoscert.topology import load_topology

# soft_wrap: a message is one line however long, for logs and for grep.
console = Console(stderr=True, soft_wrap=True)
DEFAULT_TOPOLOGY = Path("fixtures/topologies/reference.yaml")
# The catalogue check collects the suite in this process before the run, which
# then finds its modules imported: pytest's warning that it cannot rewrite
# their asserts again says nothing about the run.
ALREADY_IMPORTED = [
    "-W",
    "ignore:Module already imported so cannot be rewritten"
    ":pytest.PytestAssertRewriteWarning",
]


def _stack(args: argparse.Namespace) -> LocalStack:
    return LocalStack(load_topology(Path(args.topology)), Path(args.state_dir))


def cmd_local_up(args: argparse.Namespace) -> int:
    platform = LocalPlatform(Path(args.topology), Path(args.state_dir))
    stack = platform.stack
    # A live run's faults are its own to heal, not leftovers.
    stack.refuse_if_running()
    for line in platform.heal_leftovers():
        console.print(f"healed a fault a killed run left behind: {line}")
    console.print(
        f"bringing up the local stack ({stack.topology.name}) in {stack.state_dir}"
    )
    seconds = stack.up(progress=lambda line: console.print(f"  {line}"))
    console.print(
        f"[green]steady state[/green]: cold start took {seconds:.1f} s;"
        f" edge at {stack.layout.base_url}"
    )
    return 0


def cmd_local_status(args: argparse.Namespace) -> int:
    stack = _stack(args)
    out = Console()
    table = Table(title=f"local stack in {stack.state_dir}")
    for column in ("node", "zone", "address", "state", "processes"):
        table.add_column(column)
    statuses = stack.status()
    for status in statuses:
        table.add_row(
            status.node, status.zone, status.address, status.state, str(status.pids)
        )
    out.print(table)
    if all(status.state == "stopped" for status in statuses):
        out.print("not running; start it with `chaoscert local up`")
        return 1
    view = health.patroni_cluster(stack.layout)
    out.print(f"database leader: {view.leader or 'none'}")
    problems = health.steady_state_problems(
        stack.layout, stack.topology.patroni.synchronous
    )
    if problems:
        out.print("not in steady state: " + "; ".join(problems))
        return 1
    out.print("steady state")
    return 0


def cmd_local_down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stopped = stack.down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    """Heal what a killed run left live, without starting a run."""
    from chaoscert.platforms import get_platform

    platform = get_platform(
        args.platform,
        Path(args.topology),
        Path(args.state_dir),
        target=Path(args.target) if args.target else None,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
    )
    if isinstance(platform, LocalPlatform):
        # A live run's faults are its own to heal, not leftovers.
        platform.stack.refuse_if_running()
        healed = platform.heal_leftovers()
    else:
        platform.acquire()  # refuses while another run holds the target
        try:
            healed = platform.heal_leftovers()
        finally:
            platform.release()
    for line in healed:
        console.print(f"healed a fault a killed run left behind: {line}")
    if not healed:
        console.print("nothing to heal: no fault is on record")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the report of a Chaos Toolkit run from its journal."""
    from chaoscert.ctk.journal import report_from_journal

    path = report_from_journal(Path(args.journal), Path(args.reports_dir))
    console.print(f"report: {escape(str(path.resolve()))}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Each scenario's longest outage over the last runs, regressions flagged.

    Exit 0 when nothing regressed, 1 when something did or there is no history.
    """
    from chaoscert.history import contexts, history_path, latest_trends

    if args.last < 1:
        raise ConfigError(f"--last must be at least 1, not {args.last}")
    path = history_path(Path(args.reports_dir))
    out = Console()
    if not out.is_terminal:
        # Logs and pipes have no width to fit; wrapping a row would split it.
        out = Console(width=max(out.width, 200), soft_wrap=True)
    if not path.exists():
        out.print(f"no history yet in {path}: no finished run is recorded there")
        return 1

    sparks = (out.encoding or "").lower().startswith("utf")
    regressions: list[tuple[str, str, str]] = []
    shown = 0
    for platform, topology in contexts(path, args.platform, args.topology):
        trends = latest_trends(path, platform, topology, args.scenario, args.last)
        if not trends:
            continue
        title = f"{platform} / {topology}: up to the last {args.last} runs"
        table = Table(title=escape(title))
        for column in ("scenario", "workflow", "tier (limit)", "max outage s"):
            table.add_column(column)
        if sparks:
            table.add_column("trend")
        for column in ("latest s", "baseline s", "flag"):
            table.add_column(column)
        for trend in trends:
            outages = [point.max_outage_s for point in trend.points]
            baseline = (
                f"{trend.baseline_s:.1f} ±{trend.noise_s:.1f}"
                if trend.baseline_s is not None and trend.noise_s is not None
                else "-"
            )
            flag = "REGRESSION" if trend.regression else ""
            table.add_row(
                escape(trend.scenario),
                escape(trend.workflow),
                escape(f"{trend.tier} ({trend.limit_s:g} s)"),
                " ".join(f"{value:.1f}" for value in outages),
                *([_sparkline(outages)] if sparks else []),
                f"{trend.latest.max_outage_s:.1f}",
                baseline,
                f"[red]{flag}[/red]" if flag else "",
            )
            if trend.regression:
                regressions.append((trend.scenario, trend.workflow, trend.regression))
        out.print(table)
        shown += len(trends)

    if not shown:
        out.print(f"no recorded run in {path} matches the filters given")
        return 1
    for scenario, workflow, sentence in regressions:
        where = escape(f"{scenario} ({workflow}): {sentence}")
        out.print(f"[red]REGRESSION[/red] {where}")
    noun = "regression" if len(regressions) == 1 else "regressions"
    out.print(f"{len(regressions) or 'no'} {noun} in {shown} scenario workflows")
    return 1 if regressions else 0


def _sparkline(values: list[float]) -> str:
    """One block character per value, scaled between their least and most."""
    blocks = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    if high - low < 1e-9:
        return blocks[3] * len(values)
    scale = (len(blocks) - 1) / (high - low)
    return "".join(blocks[round((value - low) * scale)] for value in values)


def cmd_setup(args: argparse.Namespace) -> int:
    from chaoscert.platforms.local import setup

    return setup.run(console, tests=args.tests)


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from chaoscert.config import load_slo
    from chaoscert.live import open_view
    from chaoscert.results import new_run_id

    # Bad input stops here, with one line, before anything starts.
    load_slo(Path(args.slo))
    if args.platform not in KNOWN_PLATFORMS:
        raise ConfigError(
            f"--platform {args.platform!r} is not available"
            f" (available: {', '.join(KNOWN_PLATFORMS)})"
        )
    if args.platform == "kubernetes":
        _check_target(args)
    else:
        load_topology(Path(args.topology))
    for option, value in (
        ("--rate-hz", args.rate_hz),
        ("--probe-timeout-s", args.probe_timeout_s),
    ):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{option} must be a positive number, not {value}")
    suite = Path(args.suite)
    if not (suite / "steps").is_dir() or not (suite / "features").is_dir():
        raise ChaoscertError(
            f"{suite}: no steps/ and features/ here; run from the chaoscert checkout"
            " or pass --suite"
        )
    _check_catalogue(suite)
    run_id = new_run_id()
    run_dir = Path(args.reports_dir) / run_id
    extra = [a for a in args.pytest_args if a != "--"]
    outputs = [
        f"--junitxml={run_dir / 'junit.xml'}",
        f"--cucumberjson={run_dir / 'cucumber.json'}",
    ]
    pytest_args = [
        str(suite / "steps"),
        f"--rootdir={suite}",
        f"--platform={args.platform}",
        f"--topology={args.topology}",
        f"--slo={args.slo}",
        f"--rate-hz={args.rate_hz}",
        f"--probe-timeout-s={args.probe_timeout_s}",
        f"--reports-dir={args.reports_dir}",
        f"--run-id={run_id}",
        *([f"--state-dir={args.state_dir}"] if args.state_dir else []),
        *([f"--target={args.target}"] if args.target else []),
        *([f"--kubeconfig={args.kubeconfig}"] if args.kubeconfig else []),
        *(["--dry-run"] if args.dry_run else outputs),
        *extra,
    ]
    console.print(f"run {run_id}: pytest {' '.join(pytest_args)}")
    if args.dry_run:
        return int(pytest.main([*pytest_args, *ALREADY_IMPORTED]))
    run_dir.mkdir(parents=True, exist_ok=True)
    # Taken before pytest captures descriptors 1 and 2 (see chaoscert.live).
    view = open_view(run_id, plain=args.plain)
    with view.attached():
        code = int(
            pytest.main([*pytest_args, *ALREADY_IMPORTED], plugins=[view.plugin()])
        )
    if FaultRegistry.received_signal is not None:
        code = 128 + FaultRegistry.received_signal
    view.summarize()
    report = run_dir / "report.html"
    if report.exists():
        console.print(f"report: {report.resolve()}")
        pdf = run_dir / "report.pdf"
        if pdf.exists():
            console.print(f"pdf: {pdf.resolve()}")
        console.print(f"latest: {Path(args.reports_dir).resolve() / 'latest'}")
    elif run_dir.exists():
        console.print(f"[red]no report was rendered; results in {run_dir}[/red]")
    code = _tier_exit_code(run_dir, code)
    view.finish(code)
    return code


def _check_catalogue(suite: Path) -> None:
    """Collect the catalogue, running nothing and writing nothing: a feature
    file that does not parse, a step no definition matches or a parameter its
    definition refuses is one line here, before the run starts."""
    import pytest

    from chaoscert.config import read_text
    from chaoscert.pytest_plugin import CatalogueCheck

    for feature in sorted((suite / "features").rglob("*.feature")):
        read_text(feature)  # pytest-bdd would not say which file is not UTF-8
    check = CatalogueCheck()
    said = io.StringIO()
    with redirect_stdout(said), redirect_stderr(said):
        code = pytest.main(
            [
                str(suite / "steps"),
                f"--rootdir={suite}",
                "--collect-only",
                "-qq",
                "-p",
                "no:cacheprovider",
            ],
            plugins=[check],
        )
    if check.refusal:
        raise ConfigError(check.refusal)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        last = (said.getvalue().strip().splitlines() or [""])[-1]
        raise ChaoscertError(
            f"{suite}: the catalogue could not be collected"
            f" (pytest exit {int(code)}): {last}"
        )


def _tier_exit_code(run_dir: Path, code: int) -> int:
    """Non-zero when any tier failed, even where every scenario passed (a
    scenario that asserts only part of its verdict, say)."""
    from chaoscert.report.html import tier_headlines
    from chaoscert.results import load_results

    if code != 0 or not (run_dir / "results.json").exists():
        return code
    try:
        headlines = tier_headlines(load_results(run_dir))
    except ConfigError as exc:
        console.print(f"[red]chaoscert:[/red] {escape(str(exc))}")
        return 1
    failed = [h.heading for h in headlines if h.status == "NOT CERTIFIED"]
    if failed:
        console.print(f"[red]not certified[/red]: {', '.join(failed)}")
        return 1
    return code


def _check_target(args: argparse.Namespace) -> None:
    """The target profile, its kube context and (unless a dry run) the Odoo
    credentials and the permission for destructive faults, before anything."""
    from chaoscert.platforms.kubernetes.platform import kube_configuration
    from chaoscert.targets import load_target

    if not args.target:
        raise ConfigError("--platform kubernetes needs --target PROFILE.yaml")
    target = Path(args.target)
    profile = load_target(target)
    if not args.dry_run:
        profile.refuse_unless_allowed(profile.context, "faults")
        profile.odoo.credentials(target)
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    kube_configuration(profile, kubeconfig, target)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaoscert", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="the embedded local stack")
    local_commands = local.add_subparsers(dest="action", required=True)
    for name, func, help_text in (
        ("up", cmd_local_up, "start the stack and wait for steady state"),
        ("status", cmd_local_status, "show nodes and steady state"),
        ("down", cmd_local_down, "stop every process of the stack"),
    ):
        sub = local_commands.add_parser(name, help=help_text)
        sub.add_argument("--topology", default=str(DEFAULT_TOPOLOGY))
        sub.add_argument("--state-dir", default=str(default_state_dir()))
        sub.set_defaults(func=func)
    heal = commands.add_parser(
        "heal", help="heal the faults a killed run left live (from their record)"
    )
    heal.add_argument("--platform", default="local", choices=KNOWN_PLATFORMS)
    heal.add_argument("--topology", default=str(DEFAULT_TOPOLOGY))
    heal.add_argument("--state-dir", default=str(default_state_dir()))
    heal.add_argument("--target", default=None, help="target profile (kubernetes)")
    heal.add_argument("--kubeconfig", default=None, help="kubeconfig file")
    heal.set_defaults(func=cmd_heal)

    from chaoscert.platforms.kubernetes import kindcli

    kindcli.register(commands, console)

    report = commands.add_parser(
        "report", help="write the report of a Chaos Toolkit journal (chaos run)"
    )
    report.add_argument("journal", help="the journal.json `chaos run` wrote")
    report.add_argument("--reports-dir", default="reports")
    report.set_defaults(func=cmd_report)

    history = commands.add_parser(
        "history",
        help="each scenario's longest outage over the last runs, regressions"
        " flagged (exit 1 on a regression)",
    )
    history.add_argument("--reports-dir", default="reports")
    history.add_argument("--platform", default=None, help="only this platform")
    history.add_argument(
        "--topology", default=None, help="only this topology (its name)"
    )
    history.add_argument(
        "--scenario", default=None, help="only scenarios whose name contains this"
    )
    history.add_argument(
        "--last", type=int, default=10, help="runs shown per scenario (default 10)"
    )
    history.set_defaults(func=cmd_history)

    setup = commands.add_parser(
        "setup",
        help="install what the local stack and the report need (apt-get when root)",
    )
    setup.add_argument(
        "--tests",
        action="store_true",
        help="also what chaoscert's own tests need (tesseract-ocr)",
    )
    setup.set_defaults(func=cmd_setup)

    run = commands.add_parser(
        "run",
        help="run the catalogue and write reports/<run-id>/ (pytest args after --)",
    )
    run.add_argument("--platform", default="local")
    run.add_argument("--topology", default=str(DEFAULT_TOPOLOGY))
    run.add_argument("--slo", default="fixtures/slo-tiers.yaml")
    run.add_argument("--rate-hz", type=float, default=10.0)
    run.add_argument("--probe-timeout-s", type=float, default=2.0)
    run.add_argument("--reports-dir", default="reports")
    run.add_argument("--state-dir", default=None)
    run.add_argument("--target", default=None, help="target profile (kubernetes)")
    run.add_argument("--kubeconfig", default=None, help="kubeconfig file")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan: which nodes and pods each fault would hit",
    )
    run.add_argument("--suite", default=".", help="folder holding features/ and steps/")
    run.add_argument(
        "--plain",
        action="store_true",
        help="one line per change instead of the live view (always so when"
        " stderr is not a terminal)",
    )
    run.add_argument("pytest_args", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_run)
    return parser


def _check_directories(args: argparse.Namespace) -> None:
    """--reports-dir and --state-dir name directories (or none yet): a file
    there is one line, not a traceback halfway through a command."""
    for option in ("reports_dir", "state_dir"):
        value = getattr(args, option, None)
        if not value:
            continue
        path = Path(value)
        flag = "--" + option.replace("_", "-")
        for part in (path, *path.parents):
            if part.exists() and not part.is_dir():
                raise ConfigError(f"{flag} {path}: {part} is not a directory")
            if part.exists():
                break


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        _check_directories(args)
        return int(args.func(args))
    except ChaoscertError as exc:
        # Messages quote the user's files, which may hold rich markup.
        console.print(f"[red]chaoscert:[/red] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt:
        console.print("[red]chaoscert:[/red] interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
