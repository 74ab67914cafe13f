"""Atheris entry point: fuzz one format handler (`--handler NAME`), or all of them at once (`--handler all`:
an input's first byte picks the handler), then libFuzzer's own arguments."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import resource
import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SKIPPED_MODULES = frozenset({"modelshield.analysis.hdf5_probe", "modelshield.analysis.weight_stats"})
"""Run only in an isolated child (h5py) or under --deep (numpy); not reached by a fuzzed scan."""


def _import_instrumented() -> None:
    """Import every module the scan can reach while atheris instruments them for coverage feedback;
    handlers import some analyses lazily, which would otherwise stay uninstrumented."""
    with atheris.instrument_imports(include=["modelshield"]):
        for package_name in ("modelshield.engine", "modelshield.analysis", "modelshield.formats"):
            package = importlib.import_module(package_name)
            for module in pkgutil.iter_modules(package.__path__, f"{package_name}."):
                if module.name not in SKIPPED_MODULES:
                    importlib.import_module(module.name)
        importlib.import_module("fuzz.harness")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handler", required=True, help="a name of modelshield.formats.HANDLERS, or 'all'")
    parser.add_argument(
        "--memory-mb", type=int, default=3072, help="address-space limit of this process (RLIMIT_AS)"
    )
    ours, libfuzzer_args = parser.parse_known_args()
    limit = ours.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    _import_instrumented()
    from fuzz.harness import ALL, all_targets, check, check_multiplexed, target

    if ours.handler == ALL:
        targets = all_targets()

        def one_input(data: bytes) -> None:
            check_multiplexed(targets, data)

    else:
        fuzz_target = target(ours.handler)

        def one_input(data: bytes) -> None:
            check(fuzz_target, data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
