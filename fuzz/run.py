"""Fuzz every format handler for a time budget; exit 1 when any run found a bug.

    python fuzz/run.py --total-seconds 60            # CI: a minute across all handlers, one process
    python fuzz/run.py --seconds-per-handler 600     # by hand: each handler in its own process
    python fuzz/run.py --handler pickle --handler zip --seconds-per-handler 300

--total-seconds runs the multiplexed target (fuzz/fuzz_handler.py --handler all: an input's first byte
picks the handler), so the budget is not spent starting 33 instrumented interpreters. Per handler, each
runs in its own atheris process over its own corpus. Corpora live in the work dir (seeded by
fuzz/build_corpus.py when missing). A crash, a failed handler, a hang past --timeout or memory past
--rss-limit-mb stops the run with the input saved under work/crashes/<target>/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fuzz.harness import ALL, MAX_INPUT_BYTES, handler_names  # noqa: E402

DEFAULT_WORK = ROOT / "fuzz" / "work"
HARNESS = ROOT / "fuzz" / "fuzz_handler.py"
MIN_SECONDS = 1
STARTUP_GRACE_SECONDS = 120
"""On top of a run's own budget: imports, loading the seed corpus, and a last slow input."""


@dataclass(frozen=True)
class HandlerRun:
    handler: str
    returncode: int
    seconds: float
    artifacts: tuple[Path, ...]
    tail: str


def run_handler(handler: str, seconds: int, work: Path, timeout: int, rss_limit_mb: int) -> HandlerRun:
    corpus = work / "corpus" / handler
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = work / "crashes" / handler
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    command = [
        sys.executable,
        str(HARNESS),
        "--handler",
        handler,
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-max_len={MAX_INPUT_BYTES}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    started = time.monotonic()
    try:
        proc = subprocess.run(  # noqa: S603 - our own harness with arguments we built
            command,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=seconds + timeout + STARTUP_GRACE_SECONDS,
        )
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode, output = -1, f"fuzzer did not stop in time: {exc}"
    artifacts = tuple(sorted(set(crashes.iterdir()) - before))
    return HandlerRun(handler, returncode, time.monotonic() - started, artifacts, output[-3000:])


def _stat(output: str, key: str) -> str:
    for line in output.splitlines():
        if key in line:
            return line.rsplit(":", 1)[-1].strip()
    return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--total-seconds", type=int, default=60, help="all handlers together (default 60)")
    budget.add_argument("--seconds-per-handler", type=int, help="each handler in turn, this long")
    parser.add_argument("--handler", action="append", help="only this handler (repeatable; per handler)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="corpora and crashes (fuzz/work)")
    parser.add_argument("--rebuild-corpus", action="store_true", help="rebuild the seed corpora first")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take (default 30)")
    parser.add_argument("--rss-limit-mb", type=int, default=1536, help="memory bound (default 1536)")
    args = parser.parse_args()

    unknown = sorted(set(args.handler or ()) - set(handler_names()))
    if unknown:
        parser.error(f"unknown handler(s) {unknown}; known: {', '.join(handler_names())}")
    work = args.work.resolve()
    if args.rebuild_corpus or not (work / "corpus" / ALL).is_dir():
        from fuzz.build_corpus import build

        build(work)
    if args.handler or args.seconds_per_handler:
        names = args.handler or handler_names()
        seconds = args.seconds_per_handler or max(MIN_SECONDS, args.total_seconds // len(names))
    else:
        names, seconds = [ALL], max(MIN_SECONDS, args.total_seconds)

    failed: list[HandlerRun] = []
    for name in names:
        result = run_handler(name, seconds, work, args.timeout, args.rss_limit_mb)
        runs = _stat(result.tail, "stat::number_of_executed_units")
        status = "ok" if result.returncode == 0 else f"BUG (exit {result.returncode})"
        print(f"{name:16} {status:16} {result.seconds:6.1f} s  {runs:>8} inputs", flush=True)
        if result.returncode != 0:
            failed.append(result)
    for result in failed:
        kept = ", ".join(str(path) for path in result.artifacts) or "none"
        print(f"\n=== {result.handler}: exit {result.returncode}; inputs kept: {kept}")
        print(result.tail)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
