"""`modelshield download` (scan on download) and the options that let `scan` read remote addresses."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelshield.engine.limits import parse_size
from modelshield.errors import ModelShieldError, PolicyError, UnsafeModelError, UsageError
from modelshield.report import REPORT_FORMATS

if TYPE_CHECKING:
    from modelshield.engine.result import ScanResult
    from modelshield.engine.scanner import FileTarget

DEFAULT_MAX_DOWNLOAD = "20GiB"
_MAX_DOWNLOAD_KEY = "modelshield.max_download_bytes"
_MLFLOW_URI_KEY = "modelshield.mlflow_uri"

F = TypeVar("F", bound=Callable[..., Any])


def _byte_size(_ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError:
        message = f"not a size: {value!r} (expected bytes, or with a unit: 512MiB, 10GiB, 2GB)"
        raise click.BadParameter(message, param=param) from None


def _remembered_byte_size(key: str) -> Callable[[click.Context, click.Parameter, str], int]:
    def store(ctx: click.Context, param: click.Parameter, value: str) -> int:
        size = _byte_size(ctx, param, value)
        ctx.meta[key] = size
        return size

    return store


def _remember(key: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    def store(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        ctx.meta[key] = value
        return value

    return store


def _max_download_option(**extra: Any) -> Callable[[F], F]:
    return click.option(
        "--max-download-size",
        metavar="SIZE",
        default=DEFAULT_MAX_DOWNLOAD,
        show_default=True,
        help="Most bytes downloaded for remote addresses (hf://org/name@rev, models:/name/3, s3://bucket/"
        "prefix), all of them together.",
        **extra,
    )


def _mlflow_uri_option(**extra: Any) -> Callable[[F], F]:
    return click.option(
        "--mlflow-uri",
        metavar="URI",
        envvar="MLFLOW_TRACKING_URI",
        default=None,
        help="MLflow tracking server for models:/ addresses [default: $MLFLOW_TRACKING_URI].",
        **extra,
    )


def remote_source_options(command: F) -> F:
    """`--max-download-size` and `--mlflow-uri` for `scan`, kept out of its signature: `scan_targets`
    reads them from the context."""
    remember_size = _remembered_byte_size(_MAX_DOWNLOAD_KEY)
    command = _max_download_option(expose_value=False, callback=remember_size)(command)
    return _mlflow_uri_option(expose_value=False, callback=_remember(_MLFLOW_URI_KEY))(command)


def scan_targets(paths: Sequence[str]) -> list[FileTarget]:
    """The files `scan` reads: local paths walked, remote addresses pinned and downloaded into private
    directories that live as long as the command."""
    from modelshield.engine.scanner import expand_paths

    # Every remote address has a scheme before a colon: plain paths never import the connectors.
    if not any(":" in path for path in paths):
        return list(expand_paths(paths))
    from modelshield.connectors import ConnectorSettings, is_remote_address

    if not any(is_remote_address(path) for path in paths):
        return list(expand_paths(paths))
    from modelshield.remote import DEFAULT_MAX_DOWNLOAD_BYTES, scan_inputs

    ctx = click.get_current_context()
    settings = ConnectorSettings.from_environment(mlflow_tracking_uri=ctx.meta.get(_MLFLOW_URI_KEY))
    budget = ctx.meta.get(_MAX_DOWNLOAD_KEY) or DEFAULT_MAX_DOWNLOAD_BYTES
    return ctx.with_resource(scan_inputs(paths, settings=settings, max_download_bytes=budget))


@click.command("download")
@click.argument("address")
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Directory to place the scanned version in (absent or empty) [default: the download cache, "
    "$MODELSHIELD_CACHE_DIR or the user cache dir, under <scheme>/<model>/<version>].",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Policy TOML file (rules, severities, callables, suppressions).",
)
@click.option(
    "--fail-on",
    type=click.Choice(("critical", "high", "medium", "low"), case_sensitive=False),
    default=None,
    help="Refuse the version when a finding has this severity or worse [default: the policy's fail_on].",
)
@_max_download_option(callback=_byte_size)
@_mlflow_uri_option()
@click.option(
    "--hf-endpoint",
    metavar="URL",
    envvar="HF_ENDPOINT",
    default=None,
    help="Hugging Face endpoint [default: $HF_ENDPOINT].",
)
@click.option(
    "--format",
    "report_format",
    type=click.Choice(REPORT_FORMATS),
    default=None,
    help="Also write a scan report in this format (json, sarif, text, ...), to --output or standard error.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="File for the --format report, written atomically.",
)
@click.pass_context
def download_command(
    ctx: click.Context,
    address: str,
    dest: str | None,
    policy_file: str | None,
    fail_on: str | None,
    max_download_size: int,
    mlflow_uri: str | None,
    hf_endpoint: str | None,
    report_format: str | None,
    output: str | None,
) -> None:
    """Download a model version, scan it, and print its local path only if the scan passed.

    ADDRESS is pinned to one exact version first (a Hugging Face branch or tag to its commit sha); the
    printed directory holds exactly the files that were scanned. A refused version leaves nothing behind
    and exits non-zero (1: findings, 2: not fully scanned or not downloadable, 3: usage)."""
    from modelshield.cli import EXIT_SCAN_ERROR, EXIT_USAGE, exit_code_for
    from modelshield.connectors import ConnectorSettings, DownloadBudget
    from modelshield.engine.findings import Severity
    from modelshield.policy.loader import load_policy
    from modelshield.policy.model import Policy
    from modelshield.safe_download import download_scanned

    try:
        policy = load_policy(policy_file) if policy_file is not None else Policy()
        if fail_on is not None:
            policy = replace(policy, fail_on=Severity(fail_on.lower()))
        settings = ConnectorSettings.from_environment(mlflow_tracking_uri=mlflow_uri, hf_endpoint=hf_endpoint)
        _check_report(report_format, output)
        budget = DownloadBudget(max_bytes=max_download_size)
        scanned = download_scanned(address, policy, dest=dest, budget=budget, settings=settings)
    except UnsafeModelError as exc:
        _report(exc.result, report_format, output)
        click.echo(f"modelshield: {address}: {exc}", err=True)
        ctx.exit(exit_code_for(exc.result, policy.fail_on))
    except (UsageError, PolicyError) as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(EXIT_USAGE)
    except ModelShieldError as exc:
        click.echo(f"modelshield: error: {exc}", err=True)
        ctx.exit(EXIT_SCAN_ERROR)
    _report(scanned.result, report_format, output)
    how = "found in the cache and scanned again" if scanned.reused else "downloaded and scanned"
    click.echo(
        f"modelshield: {scanned.version.address}: {len(scanned.result.files)} files {how} "
        f"({scanned.result.verdict.value})",
        err=True,
    )
    click.echo(os.fspath(scanned.path))


def _check_report(report_format: str | None, output: str | None) -> None:
    from modelshield.cli import _check_writable
    from modelshield.report import renderer_for

    if report_format is None:
        if output is not None:
            raise UsageError("--output needs a --format")
        return
    renderer_for(report_format)  # a format missing its extra fails now, not after the download
    if output is not None:
        _check_writable(output)


def _report(result: ScanResult, report_format: str | None, output: str | None) -> None:
    """The report goes to its file or to standard error: standard output carries only the path."""
    if report_format is None:
        return
    from pathlib import Path

    from modelshield.cli import _render, _write_atomically

    text = _render(result, report_format, to_terminal=False)
    if output is None:
        click.echo(text, err=True, nl=False)
    else:
        _write_atomically(Path(output), text)
