"""The `modelshield inventory` and `modelshield gate` commands: a thin face over `modelshield.inventory`."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from modelshield.engine.findings import Severity
from modelshield.errors import ModelShieldError, PolicyError, UsageError

if TYPE_CHECKING:
    from types import ModuleType

    from sqlalchemy.orm import Session

    from modelshield.engine.limits import Limits
    from modelshield.inventory.diff import VersionDiff
    from modelshield.inventory.schema import Model, Source, Version
    from modelshield.inventory.store import Inventory
    from modelshield.inventory.sync import SyncReport, VersionOutcome
    from modelshield.policy.model import Policy

INVENTORY_EXTRA = "pip install 'modelshield[inventory]'"
POSTGRES_EXTRA = "pip install 'modelshield[postgres]'"
OUTPUT_FORMATS = ("text", "json")
_FAIL_ON_CHOICES = ("critical", "high", "medium", "low")
_DB_HELP = "Inventory database URL [default: $MODELSHIELD_DB, else SQLite in the user data directory]."


class _InventoryFailure(Exception):
    """Ends a command with a message and an exit code (the CLI's named constants)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _exit_codes() -> ModuleType:
    # cli.py registers these commands, so its constants are read when a command runs, not at import.
    from modelshield import cli

    return cli


@contextmanager
def _failures_to_exit_codes(ctx: click.Context) -> Iterator[None]:
    codes = _exit_codes()
    try:
        yield
    except _InventoryFailure as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    except (UsageError, PolicyError) as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(codes.EXIT_USAGE)
    except ModelShieldError as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(codes.EXIT_SCAN_ERROR)


@dataclass(frozen=True)
class _GroupOptions:
    db_url: str | None


def _open_inventory(db_url: str | None) -> Inventory:
    """The inventory at `db_url`, migrated to head; one-line errors for a missing extra or database."""
    codes = _exit_codes()
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from modelshield.inventory.store import Inventory
    except ImportError:
        raise _InventoryFailure(
            f"the inventory needs its extra: {INVENTORY_EXTRA}", codes.EXIT_USAGE
        ) from None
    try:
        return Inventory.open(db_url)
    except ImportError as exc:
        hint = POSTGRES_EXTRA if "psycopg" in str(exc) else INVENTORY_EXTRA
        raise _InventoryFailure(f"the database driver is missing ({exc}): {hint}", codes.EXIT_USAGE) from None
    except SQLAlchemyError as exc:
        raise _InventoryFailure(
            f"cannot open the inventory database {_shown_url(db_url)}: {_first_line(exc)}",
            codes.EXIT_SCAN_ERROR,
        ) from None


def _shown_url(db_url: str | None) -> str:
    from sqlalchemy.engine import make_url

    from modelshield.inventory.database import resolve_database_url

    return make_url(resolve_database_url(db_url)).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _db_url(ctx: click.Context) -> str | None:
    options = ctx.find_object(_GroupOptions)
    return options.db_url if options else None


@contextmanager
def _inventory(ctx: click.Context) -> Iterator[Inventory]:
    inventory = _open_inventory(_db_url(ctx))
    try:
        yield inventory
    finally:
        inventory.close()


def _policy_and_limits(policy_file: str | None, fail_on: str | None) -> tuple[Policy, Limits]:
    from modelshield.engine.limits import DEFAULT_LIMITS
    from modelshield.policy.loader import load_policy_and_limits
    from modelshield.policy.model import Policy

    policy, limits = (
        load_policy_and_limits(policy_file) if policy_file is not None else (Policy(), DEFAULT_LIMITS)
    )
    if fail_on is not None:
        policy = replace(policy, fail_on=Severity(fail_on.lower()))
    return policy, limits


def _policy(policy_file: str | None, fail_on: str | None) -> Policy:
    return _policy_and_limits(policy_file, fail_on)[0]


def _render(*renderables: Any) -> str:
    from rich.console import Console

    terminal = sys.stdout.isatty()
    console = Console(file=io.StringIO(), width=None if terminal else 200, force_terminal=terminal)
    for renderable in renderables:
        # Names come from registries and messages from errors: shown as written, never read as markup.
        console.print(renderable, markup=False, highlight=False)
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def _when(moment: datetime | None) -> str:
    from modelshield.inventory.store import as_utc

    shown = as_utc(moment)
    return shown.strftime("%Y-%m-%d %H:%M:%S UTC") if shown is not None else "-"


def _short(version: str) -> str:
    return version[:12] if len(version) == 64 else version


_policy_option = click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Policy TOML file; results are reused only under the same policy.",
)
_fail_on_option = click.option(
    "--fail-on",
    type=click.Choice(_FAIL_ON_CHOICES, case_sensitive=False),
    default=None,
    help="Threshold severity [default: the policy's fail_on, else medium].",
)
_format_option = click.option(
    "--format", "output_format", type=click.Choice(OUTPUT_FORMATS), default="text", show_default=True
)
_source_option = click.option(
    "--source", "source", default=None, help="Source address, when the model name is in several sources."
)


@click.group("inventory")
@click.option("--db", "db_url", default=None, metavar="URL", help=_DB_HELP)
@click.pass_context
def inventory_group(ctx: click.Context, db_url: str | None) -> None:
    """Every model of every registered source, its versions, scans and gate status."""
    ctx.obj = _GroupOptions(db_url)


@inventory_group.command("add")
@click.argument("address")
@click.pass_context
def add_command(ctx: click.Context, address: str) -> None:
    """Register a source: a folder of models, `mlflow+http://host:port`, `s3://bucket/prefix`, `hf://org/name`."""
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory:
        from modelshield.connectors import SourceError, connector_for
        from modelshield.inventory.schema import Source
        from modelshield.inventory.store import find_source, utcnow

        try:
            connector = connector_for(address)
            canonical = connector.source
        except SourceError as exc:
            raise UsageError(str(exc)) from None
        with inventory.session() as session:
            if find_source(session, canonical) is not None:
                click.echo(f"source {canonical} is already registered")
                return
            session.add(Source(kind=connector.scheme, address=canonical, added_at=utcnow()))
            session.commit()
        click.echo(f"added source {canonical} ({connector.scheme})")


@inventory_group.command("remove")
@click.argument("address")
@click.pass_context
def remove_command(ctx: click.Context, address: str) -> None:
    """Forget a source with its models, versions and their scans (scanned blobs stay for reuse)."""
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory, inventory.session() as session:
        source = _registered_source(session, address)
        session.delete(source)
        session.commit()
        click.echo(f"removed source {source.address}")


def _registered_source(session: Session, address: str) -> Source:
    """The registered source `address` names, as given or as its connector spells it; UsageError if none."""
    from modelshield.connectors import SourceError, connector_for
    from modelshield.inventory.store import find_source

    source = find_source(session, address)
    if source is None:
        try:
            source = find_source(session, connector_for(address).source)
        except SourceError:
            source = None
    if source is None:
        raise UsageError(f"no registered source {address!r}; see `modelshield inventory list`")
    return source


@inventory_group.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Upgrade the database to the newest schema (every command also does this when it opens it)."""
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory:
        from modelshield.inventory.database import current_revision

        revision = current_revision(inventory.engine)
        click.echo(f"inventory database {_shown_url(_db_url(ctx))} at revision {revision}")


@inventory_group.command("sync")
@click.option("--source", "sources", multiple=True, help="Sync only this source (repeatable).")
@_policy_option
@click.option("--max-bytes", type=click.IntRange(min=1), default=None, help="Download budget per version.")
@click.option(
    "--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="Files scanned at once."
)
@_format_option
@click.pass_context
def sync_command(
    ctx: click.Context,
    sources: tuple[str, ...],
    policy_file: str | None,
    max_bytes: int | None,
    jobs: int,
    output_format: str,
) -> None:
    """Scan every new version of every registered source; unchanged files are never scanned twice.

    Exits 0 when every version was judged (whatever the verdicts: `gate` judges), 2 when some version
    or source could not be read."""
    codes = _exit_codes()
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory:
        from modelshield.connectors import DownloadBudget
        from modelshield.inventory.sync import SyncOptions, sync_inventory

        budget = DownloadBudget(max_bytes=max_bytes) if max_bytes else DownloadBudget()
        policy, limits = _policy_and_limits(policy_file, None)
        with inventory.session() as session:
            addresses = tuple(_registered_source(session, address).address for address in sources)
        options = SyncOptions(policy=policy, limits=limits, jobs=jobs, budget=budget, sources=addresses)
        report = sync_inventory(inventory, options, on_version=_progress(output_format))
        if output_format == "json":
            click.echo(json.dumps(_sync_document(report), indent=2))
        else:
            click.echo(_render(*_sync_table(report)), nl=False)
        ctx.exit(codes.EXIT_SCAN_ERROR if report.failed else codes.EXIT_OK)


def _progress(output_format: str) -> Callable[[VersionOutcome], None] | None:
    if output_format != "text" or not sys.stderr.isatty():
        return None
    return lambda outcome: click.echo(
        f"  {outcome.model} {_short(outcome.version)}: {outcome.status}", err=True
    )


def _sync_document(report: SyncReport) -> dict[str, Any]:
    return {
        "versions": [asdict(outcome) for outcome in report.outcomes],
        "scanned_blobs": sorted(set(report.scanned_blobs)),
        "reused_blobs": sorted(set(report.reused_blobs)),
        "source_errors": list(report.source_errors),
        "warnings": list(report.warnings),
    }


def _sync_table(report: SyncReport) -> list[Any]:
    from rich.table import Table

    table = Table(title="inventory sync", title_justify="left")
    for column in ("source", "model", "version", "status", "verdict", "scanned", "reused", "tags"):
        table.add_column(column)
    for o in report.outcomes:
        tags = {True: "written", False: "-", None: ""}[o.verdict_written]
        table.add_row(
            o.source,
            o.model,
            _short(o.version),
            o.status,
            o.verdict or "",
            str(len(o.scanned_blobs)),
            str(len(o.reused_blobs)),
            tags,
        )
    statuses = [o.status for o in report.outcomes]
    summary = (
        f"{len(statuses)} versions: {statuses.count('scanned')} scanned, {statuses.count('reused')} reused, "
        f"{statuses.count('unchanged')} unchanged, {statuses.count('error')} errors; "
        f"{len(set(report.scanned_blobs))} files scanned, {len(set(report.reused_blobs))} reused"
    )
    out: list[Any] = [table, summary]
    out.extend(f"error: {message}" for message in report.source_errors)
    out.extend(f"error: {o.model} {_short(o.version)}: {o.error}" for o in report.outcomes if o.error)
    out.extend(f"warning: {message}" for message in report.warnings)
    return out


@inventory_group.command("list")
@_format_option
@click.pass_context
def list_command(ctx: click.Context, output_format: str) -> None:
    """Every model: its source, versions, latest verdict, last scan and last known-safe version."""
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory, inventory.session() as session:
        from sqlalchemy import select

        from modelshield.inventory.schema import Model, Source

        models = session.scalars(select(Model).join(Source).order_by(Source.address, Model.name)).all()
        rows = [_model_row(session, model) for model in models]
        if output_format == "json":
            click.echo(json.dumps(rows, indent=2))
            return
        from rich.table import Table

        table = Table(title="models", title_justify="left")
        for column in ("source", "model", "versions", "latest", "verdict", "last scan", "last known safe"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["source"],
                row["model"],
                str(row["versions"]),
                _short(row["latest"] or "-"),
                row["verdict"] or "-",
                row["last_scan"] or "-",
                _short(row["last_known_safe"] or "-"),
            )
        click.echo(_render(table), nl=False)


def _model_row(session: Session, model: Model) -> dict[str, Any]:
    from modelshield.inventory.store import last_known_safe, latest_version_scan

    latest = model.versions[-1] if model.versions else None
    scan = latest_version_scan(session, latest) if latest is not None else None
    safe = last_known_safe(model)
    return {
        "source": model.source.address,
        "model": model.name,
        "versions": len(model.versions),
        "latest": latest.version if latest else None,
        "verdict": scan.verdict if scan else None,
        "last_scan": _when(scan.started_at) if scan else None,
        "last_known_safe": safe.version if safe else None,
    }


@inventory_group.command("show")
@click.argument("model_name", metavar="MODEL")
@_source_option
@_format_option
@click.pass_context
def show_command(ctx: click.Context, model_name: str, source: str | None, output_format: str) -> None:
    """One model's versions: verdicts, finding counts, last scan, gate status, known-safe."""
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory, inventory.session() as session:
        from modelshield.inventory.store import find_model, last_known_safe

        model = find_model(session, model_name, source)
        safe = last_known_safe(model)
        rows = [_version_row(session, version, safe) for version in model.versions]
        if output_format == "json":
            document = {
                "source": model.source.address,
                "model": model.name,
                "versions": rows,
                "last_known_safe": safe.version if safe else None,
            }
            click.echo(json.dumps(document, indent=2))
            return
        from rich.table import Table
        from rich.text import Text

        title = Text(f"{model.name} ({model.source.address})")  # a Text: the name is never markup
        table = Table(title=title, title_justify="left")
        for column in (
            "version",
            "labels",
            "discovered",
            "verdict",
            "findings c/h/m/l/i",
            "last scan",
            "gate",
            "known safe",
        ):
            table.add_column(column)
        for row in rows:
            counts = "/".join(str(row["findings"].get(s.value, 0)) for s in sorted(Severity, reverse=True))
            table.add_row(
                _short(row["version"]),
                ", ".join(row["labels"]),
                row["discovered"],
                row["verdict"] or "-",
                counts if row["verdict"] else "-",
                row["last_scan"] or "-",
                row["gate"],
                "last" if row["last_known_safe"] else ("yes" if row["known_safe"] else ""),
            )
        footer = f"last known-safe version: {safe.version if safe else 'none'}"
        click.echo(_render(table, footer), nl=False)


def _version_row(session: Session, version: Version, safe: Version | None) -> dict[str, Any]:
    from modelshield.inventory.gate import severity_counts
    from modelshield.inventory.store import latest_version_scan

    scan = latest_version_scan(session, version)
    return {
        "version": version.version,
        "address": version.address,
        "labels": json.loads(version.labels),
        "discovered": _when(version.discovered_at),
        "verdict": scan.verdict if scan else None,
        "scan_id": scan.id if scan else None,
        "error": scan.error if scan else None,
        "findings": severity_counts(session, version, scan) if scan else {},
        "last_scan": _when(scan.started_at) if scan else None,
        "gate": version.gate_status,
        "known_safe": version.known_safe,
        "last_known_safe": safe is not None and safe.id == version.id,
    }


@inventory_group.command("diff")
@click.argument("model_name", metavar="MODEL")
@click.argument("versions", nargs=-1, required=True, metavar="[V1] V2")
@_source_option
@_policy_option
@_fail_on_option
@_format_option
@click.pass_context
def diff_command(
    ctx: click.Context,
    model_name: str,
    versions: tuple[str, ...],
    source: str | None,
    policy_file: str | None,
    fail_on: str | None,
    output_format: str,
) -> None:
    """Files added, removed and changed, new and resolved findings, changed pickle imports between two
    versions (V1 defaults to the last known-safe version). Exits 1 when V2 brings new findings at or
    above the threshold."""
    codes = _exit_codes()
    with _failures_to_exit_codes(ctx), _inventory(ctx) as inventory, inventory.session() as session:
        from modelshield.inventory.diff import diff_versions
        from modelshield.inventory.store import find_model, find_version, last_known_safe

        if len(versions) > 2:
            raise UsageError("give at most two versions: [V1] V2")
        threshold = _policy(policy_file, fail_on).fail_on
        model = find_model(session, model_name, source)
        new = find_version(model, versions[-1])
        old = find_version(model, versions[0]) if len(versions) == 2 else last_known_safe(model)
        result = diff_versions(session, old, new)
        blocking = result.new_findings_at_or_above(threshold)
        if output_format == "json":
            document = asdict(result)
            for key in ("new_findings", "resolved_findings"):
                for item in document[key]:
                    item["severity"] = item["severity"].value
            document["threshold"] = threshold.value
            document["passed"] = not blocking
            click.echo(json.dumps(document, indent=2))
        else:
            click.echo(_render(*_diff_lines(result, threshold)), nl=False)
        ctx.exit(codes.EXIT_FINDINGS if blocking else codes.EXIT_OK)


def _diff_lines(result: VersionDiff, threshold: Severity) -> list[str]:
    old = _short(result.old) if result.old else "nothing (no known-safe version)"
    lines = [f"{result.model}: {old} → {_short(result.new)}"]
    for title, changes in (
        ("added", result.added_files),
        ("removed", result.removed_files),
        ("changed", result.changed_files),
    ):
        lines.extend(f"  {title} file {c.path}" for c in changes)
    for title, findings in (("new", result.new_findings), ("resolved", result.resolved_findings)):
        lines.extend(
            f"  {title} finding {f.severity.value} {f.rule_id} in {f.path}: {f.message}" for f in findings
        )
    lines.extend(f"  new pickle import {name}" for name in result.added_imports)
    lines.extend(f"  removed pickle import {name}" for name in result.removed_imports)
    blocking = result.new_findings_at_or_above(threshold)
    verdict = f"fails: {len(blocking)} new findings at or above {threshold.value}" if blocking else "passes"
    lines.append(f"{_short(result.new)} {verdict}")
    return lines


@click.command("gate")
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--db", "db_url", default=None, metavar="URL", help=_DB_HELP)
@_source_option
@_policy_option
@_fail_on_option
@click.pass_context
def gate_command(
    ctx: click.Context,
    target: str,
    db_url: str | None,
    source: str | None,
    policy_file: str | None,
    fail_on: str | None,
) -> None:
    """Exit 0 only if the version's latest scan passes the policy (nothing at or above the threshold,
    every file fully scanned); a pass records it as the model's last known-safe version."""
    codes = _exit_codes()
    with _failures_to_exit_codes(ctx):
        model_name, at, wanted = target.rpartition("@")
        if not at or not model_name or not wanted:
            raise UsageError(f"expected MODEL@VERSION, got {target!r}")
        policy, limits = _policy_and_limits(policy_file, fail_on)
        inventory = _open_inventory(db_url)
        try:
            with inventory.session() as session:
                from modelshield.inventory.gate import GateOutcome, run_gate
                from modelshield.inventory.store import find_model, find_version

                model = find_model(session, model_name, source)
                version = find_version(model, wanted)
                from modelshield.inventory.fingerprints import scan_settings_hash

                policy_hash = scan_settings_hash(policy, limits) if policy_file is not None else None
                result = run_gate(session, version, policy.fail_on, policy_hash)
        finally:
            inventory.close()
        word = "passes" if result.passed else "fails"
        click.echo(f"{model_name}@{_short(version.version)} {word} the gate: {result.reason}")
        exit_code = {
            GateOutcome.PASSED: codes.EXIT_OK,
            GateOutcome.FINDINGS: codes.EXIT_FINDINGS,
            GateOutcome.INCOMPLETE: codes.EXIT_SCAN_ERROR,
        }[result.outcome]
        ctx.exit(exit_code)
