"""skops: a fitted sklearn pipeline saved by skops.io is clean; dangerous and unknown types and loaders
named in schema.json are found at their place in the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.samples import skops_samples as samples

from modelshield import FileResult, Severity, Verdict, scan


def scan_root(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    return result.files[0]


def test_skops_dump_of_fitted_pipeline_is_clean(tmp_path: Path) -> None:
    sio = pytest.importorskip("skops.io")
    np = pytest.importorskip("numpy")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    x = rng.random((20, 3))
    y = (x[:, 0] > 0.5).astype(int)
    model = Pipeline(
        [("f", FunctionTransformer(np.log1p)), ("s", StandardScaler()), ("c", LogisticRegression())]
    ).fit(x, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    result = scan(path, compute_hash=False)
    assert result.files[0].tree.format == "skops"
    assert [f for f in result.findings if f.severity >= Severity.MEDIUM] == []
    assert result.verdict is Verdict.CLEAN


def test_dangerous_function_is_critical_at_its_schema_path(tmp_path: Path) -> None:
    file = scan_root(samples.write(tmp_path, "m.skops", samples.OS_SYSTEM))
    [finding] = file.findings
    assert (finding.rule_id, finding.severity, finding.evidence) == (
        "SKOPS-DANGEROUS-TYPE",
        Severity.CRITICAL,
        "posix.system",
    )
    assert finding.location.detail == "$.content.content.func"
    assert finding.location.chain[-1] == "schema.json"


def test_unknown_class_and_unknown_loader_are_high(tmp_path: Path) -> None:
    for schema, evidence in (
        (samples.UNKNOWN_CLASS, "mylab.models.TinyNet"),
        (samples.ODD_LOADER, "EvalNode"),
    ):
        file = scan_root(samples.write(tmp_path, "m.skops", schema))
        assert [(f.rule_id, f.severity, f.evidence) for f in file.findings] == [
            ("SKOPS-UNKNOWN-TYPE", Severity.HIGH, evidence)
        ]
