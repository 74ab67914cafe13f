"""The `modelshield` command: parse arguments, call the scanning API, render a report, exit with a code."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelshield import __version__
from modelshield.cli_download import remote_source_options, scan_targets
from modelshield.engine.findings import Severity
from modelshield.engine.limits import DEFAULT_LIMITS, InvalidLimit, Limits
from modelshield.errors import ModelShieldError, PolicyError, UsageError
from modelshield.policy.model import Policy
from modelshield.report import REPORT_FORMATS, renderer_for

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from modelshield.engine.result import FileResult, ScanResult

EXIT_OK = 0
"""Nothing at or above the --fail-on threshold, and every file was fully scanned."""
EXIT_FINDINGS = 1
"""At least one finding at or above the --fail-on threshold."""
EXIT_SCAN_ERROR = 2
"""No finding at or above the threshold, but some file was not fully scanned (never reported as 0)."""
EXIT_USAGE = 3
"""Bad arguments, a missing path or an unwritable output file; nothing was judged."""

FAIL_ON_CHOICES = ("critical", "high", "medium", "low")
DEFAULT_FAIL_ON = "medium"


def exit_code_for(result: ScanResult, fail_on: Severity) -> int:
    """Findings at or above the threshold win; otherwise an incomplete scan is an error, never a pass."""
    if result.has_findings_at_or_above(fail_on):
        return EXIT_FINDINGS
    if not result.fully_scanned:
        return EXIT_SCAN_ERROR
    return EXIT_OK


@contextmanager
def _usage_errors_exit_with_usage_code() -> Iterator[None]:
    # click exits 2 on usage errors; 2 means "not fully scanned" here, so its errors are renumbered.
    try:
        yield
    except click.UsageError as exc:
        # click reads the code from the instance when exiting; typeshed calls it a class variable.
        exc.exit_code = EXIT_USAGE  # type: ignore[misc]
        raise


LAZY_COMMANDS = ("download", "gate", "inventory", "mlflow-webhook", "rules")
"""Commands other than `scan`: each one's module is imported only when it runs (or `--help` lists it),
so a scan does not pay for the inventory, webhook or rules code."""


class _ModelShieldGroup(click.Group):
    """A click group whose usage errors (at any level) exit with EXIT_USAGE, and whose commands in
    LAZY_COMMANDS are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            self.add_command(_import_command(cmd_name))
        return super().get_command(ctx, cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _usage_errors_exit_with_usage_code():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _usage_errors_exit_with_usage_code():
            return super().invoke(ctx)


@click.group(cls=_ModelShieldGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="modelshield", message="%(prog)s %(version)s")
def cli() -> None:
    """Static security scanner for AI/ML model files: nothing scanned is ever loaded."""


class _ScanCommand(click.Command):
    """`scan`, remembering where each --format and --output stood so that each output meets its format."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            # click's own parser, run once more only for the order; the real parse follows unchanged.
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            ctx.meta[_REPORT_ORDER] = [param.name for param in order if param.name in _REPORT_PARAMS]
        return super().parse_args(ctx, args)


_REPORT_ORDER = "modelshield.report_order"
_REPORT_PARAMS = ("report_format", "output")
DEFAULT_FORMAT = "text"


@cli.command(cls=_ScanCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--format",
    "report_format",
    type=click.Choice(REPORT_FORMATS),
    multiple=True,
    help=f"Report format [default: {DEFAULT_FORMAT}]. Repeat for several reports; each --output after "
    "a --format is where that report goes, and at most one report may go to standard output.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=str),
    multiple=True,
    help="Write the report of the preceding --format to this file (atomically) instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON_CHOICES, case_sensitive=False),
    default=None,
    help=(
        "Exit 1 when a finding has this severity or worse "
        f"[default: the policy's fail_on, else {DEFAULT_FAIL_ON}]."
    ),
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Policy TOML file (rules, severities, callables, suppressions). Never read from the scanned tree.",
)
@click.option("--no-hash", is_flag=True, help="Do not compute SHA-256 of each file (reported as null).")
@click.option(
    "--deep",
    is_flag=True,
    help="Also read float tensors for payloads hidden in their low bits (reads every weight: slow).",
)
@click.option(
    "--limit",
    "limit_settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Change one scan limit, over the policy's [limits]; repeatable. Sizes and times take units: "
    "--limit max_member_bytes=512MiB --limit max_seconds_per_file=30s. Every limit: docs/limits.md.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Files scanned at once, each in a worker process [default: the number of CPUs available]; "
    "1 scans in this process.",
)
@click.option(
    "--isolate",
    is_flag=True,
    help="Scan every file in a child process held to memory, CPU-time and wall-clock limits; a crash "
    "or a limit hit makes that file an error.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help=(
        "Do not use or update the hash cache (which spares an unchanged file a second hashing) or the "
        "result cache (which spares content already scanned under the same settings a second parse)."
    ),
)
@remote_source_options
@click.pass_context
def scan(
    ctx: click.Context,
    paths: tuple[str, ...],
    report_format: tuple[str, ...],
    output: tuple[str, ...],
    fail_on: str | None,
    policy_file: str | None,
    no_hash: bool,
    deep: bool,
    limit_settings: tuple[str, ...],
    jobs: int | None,
    isolate: bool,
    no_cache: bool,
) -> None:
    """Scan model files and directories (walked recursively); files are identified by content.

    PATHS may also be remote addresses (hf://org/name@rev, models:/name/3, s3://bucket/prefix): each is
    pinned to one version, downloaded into a private temporary directory, and reported by that version."""
    try:
        policy, limits = _policy_and_limits(policy_file)
        limits = _with_limit_settings(limits, limit_settings)
        if fail_on is not None:
            policy = replace(policy, fail_on=Severity(fail_on.lower()))
        threshold = policy.fail_on
        reports = report_targets(ctx.meta.get(_REPORT_ORDER), report_format, output)
        for name, target in reports:
            renderer_for(name)  # a format missing its extra fails now, not after a long scan
            if target is not None:
                _check_writable(target)
        result = _run_scan(
            paths,
            policy,
            compute_hash=not no_hash,
            deep=deep,
            limits=limits,
            jobs=jobs or available_cpus(),
            jobs_are_a_ceiling=jobs is None,
            isolate=isolate,
            hash_cache=not no_cache,
        )
        _deliver(result, reports)
    except (UsageError, PolicyError) as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    except ModelShieldError as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(EXIT_SCAN_ERROR)
    except KeyboardInterrupt:
        click.echo("modelshield: interrupted; not every file was scanned", err=True)
        ctx.exit(EXIT_SCAN_ERROR)
    ctx.exit(exit_code_for(result, threshold))


def _policy_and_limits(policy_file: str | None) -> tuple[Policy, Limits]:
    if policy_file is None:
        return Policy(), DEFAULT_LIMITS
    # Imported here: the TOML reader is needed only when a policy file is given.
    from modelshield.policy.loader import load_policy_and_limits

    return load_policy_and_limits(policy_file)


def _with_limit_settings(limits: Limits, settings: Sequence[str]) -> Limits:
    """`limits` changed by `--limit NAME=VALUE` settings (a later setting of a name wins)."""
    values: dict[str, str] = {}
    for setting in settings:
        name, equals, value = setting.partition("=")
        if not equals or not name.strip() or not value.strip():
            raise UsageError(f"--limit takes NAME=VALUE (e.g. max_member_bytes=512MiB), not {setting!r}")
        values[name.strip()] = value.strip()
    try:
        return limits.with_overrides(values)
    except InvalidLimit as exc:
        raise UsageError(f"--limit: {exc}") from None


def _run_scan(
    paths: Sequence[str],
    policy: Policy,
    *,
    compute_hash: bool,
    deep: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    jobs: int = 1,
    jobs_are_a_ceiling: bool = False,
    isolate: bool = False,
    hash_cache: bool = True,
) -> ScanResult:
    from modelshield.engine.scanner import ScanOptions, scan_paths

    targets = scan_targets(paths)
    if not targets:
        click.echo("modelshield: warning: no files found under the given paths", err=True)
    options = ScanOptions(
        compute_hash=compute_hash,
        deep=deep,
        limits=limits,
        jobs=jobs,
        jobs_are_a_ceiling=jobs_are_a_ceiling,
        isolate=isolate,
        hash_cache=hash_cache,
    )
    if not (targets and sys.stderr.isatty()):
        return scan_paths(paths, policy=policy, options=options, targets=targets)
    with _progress_bar(len(targets)) as advance:
        return scan_paths(paths, policy=policy, options=options, targets=targets, on_file=advance)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count, where they differ)."""
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13
    if counter is not None:
        return max(1, counter() or 1)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


PROGRESS_DELAY_SECONDS = 0.5
"""A scan still running after this long gets a progress bar on the terminal. A quicker one (a small file,
a re-scan answered from the cache) never imports rich, which costs more than the rest of its start-up."""


@contextmanager
def _progress_bar(
    total: int, delay: float = PROGRESS_DELAY_SECONDS
) -> Iterator[Callable[[FileResult], None]]:
    bar = _DeferredProgressBar(total)
    timer = threading.Timer(delay, bar.show)
    timer.daemon = True
    timer.start()
    try:
        yield bar.advance
    finally:
        timer.cancel()
        bar.close()


class _DeferredProgressBar:
    """Counts scanned files from the start; draws rich's transient bar on standard error only once `show`
    is called (by a timer thread), already advanced by the files done until then."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0
        self._closed = False
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def advance(self, _file: FileResult) -> None:
        with self._lock:
            self._done += 1
            if self._progress is not None and self._task is not None:
                self._progress.advance(self._task)

    def show(self) -> None:
        # Imported outside the lock: the scan goes on counting files while rich loads.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with self._lock:
            if self._closed:
                return
            self._progress = Progress(*columns, console=Console(stderr=True), transient=True)
            self._task = self._progress.add_task("scan", total=self._total, completed=self._done)
            self._progress.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._progress is not None:
                self._progress.stop()


def report_targets(
    order: Sequence[str] | None, formats: Sequence[str], outputs: Sequence[str]
) -> list[tuple[str, str | None]]:
    """Each requested format with its file (None: standard output). An --output belongs to the --format
    just before it; one format and one output always pair, in either order, as they always have."""
    if len(formats) <= 1 and len(outputs) <= 1:
        return [(formats[0] if formats else DEFAULT_FORMAT, outputs[0] if outputs else None)]
    if order is None or len(order) != len(formats) + len(outputs):
        raise UsageError("cannot tell which --output belongs to which --format")
    pairs: list[tuple[str, str | None]] = []
    remaining_formats, remaining_outputs = iter(formats), iter(outputs)
    for name in order:
        if name == "report_format":
            pairs.append((next(remaining_formats), None))
            continue
        target = next(remaining_outputs)
        if not pairs:
            raise UsageError(
                f"--output {target} comes before any --format; give each --output after its --format"
            )
        if pairs[-1][1] is not None:
            raise UsageError(
                f"--output {target}: the {pairs[-1][0]} report already goes to {pairs[-1][1]}; "
                "give each --output after its own --format"
            )
        pairs[-1] = (pairs[-1][0], target)
    to_stdout = [name for name, target in pairs if target is None]
    if len(to_stdout) > 1:
        raise UsageError(
            f"at most one report can go to standard output, but {' and '.join(to_stdout)} have no --output"
        )
    seen: dict[str, str] = {}
    for _, path in pairs:
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise UsageError(f"two reports would be written to the same file: {seen[key]} and {path}")
        seen[key] = path
    return pairs


def _deliver(result: ScanResult, reports: Sequence[tuple[str, str | None]]) -> None:
    # Files first: standard output, when used, is then the last thing a pipeline sees.
    for report_format, output in sorted(reports, key=lambda pair: pair[1] is None):
        text = _render(result, report_format, to_terminal=output is None and sys.stdout.isatty())
        if output is None:
            click.echo(_encodable(text, sys.stdout.encoding), nl=False)
            continue
        _write_atomically(Path(output), text)
        click.echo(f"modelshield: report written to {output} (verdict: {result.verdict.value})", err=True)


def _render(result: ScanResult, report_format: str, *, to_terminal: bool) -> str:
    if report_format != "text":
        return renderer_for(report_format)(result)
    from modelshield.report.text import render_text

    color = to_terminal and "NO_COLOR" not in os.environ
    return render_text(result, color=color, width=_width(to_terminal))


def _encodable(text: str, encoding: str | None) -> str:
    """A terminal that cannot show `›` or a tree guide gets `?` rather than a crash after the scan."""
    if not encoding:
        return text
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, errors="replace").decode(encoding)
    except LookupError:
        pass
    return text


def _width(to_terminal: bool) -> int:
    from modelshield.report.text import DEFAULT_WIDTH

    if not to_terminal:
        return DEFAULT_WIDTH
    import shutil

    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def _check_writable(output: str) -> None:
    """Fail before scanning rather than lose a long scan's report to a typo in the output path."""
    target = Path(output)
    directory = target.parent
    if target.is_dir():
        raise UsageError(f"output is a directory: {output}")
    if not directory.is_dir():
        raise UsageError(f"output directory does not exist: {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"output directory is not writable: {directory}")


def _write_atomically(target: Path, text: str) -> None:
    """Readers of `target` see the old report or the whole new one, never half of it."""
    import tempfile

    try:
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o666 & ~_current_umask())
        os.replace(temp_name, target)
    except BaseException as exc:
        with suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _import_command(name: str) -> click.Command:
    """The command of that name in LAZY_COMMANDS, its module imported now (plainly: no computed names)."""
    if name == "download":
        from modelshield.cli_download import download_command

        return download_command
    if name == "gate":
        from modelshield.cli_inventory import gate_command

        return gate_command
    if name == "inventory":
        from modelshield.cli_inventory import inventory_group

        return inventory_group
    if name == "mlflow-webhook":
        from modelshield.cli_webhook import mlflow_webhook_command

        return mlflow_webhook_command
    if name == "rules":
        from modelshield.cli_rules import rules_command

        return rules_command
    raise KeyError(name)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="modelshield")
