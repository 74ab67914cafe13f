"""MLflow: MLmodel loaders, code paths, pickled flavors and environments that install from odd sources."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from modelshield import FileResult, Severity, Verdict, scan
from modelshield.formats import mlflow as mlflow_format

BENIGN_MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.0
mlflow_version: 2.14.1
model_size_bytes: 870
model_uuid: 5b3c1d0e8f4a4c4c9d2e1f0a9b8c7d6e
run_id: 0f1e2d3c4b5a69788796a5b4c3d2e1f0
utc_time_created: '2024-06-01 12:00:00.000000'
"""

BENIGN_CONDA = """\
channels:
- conda-forge
dependencies:
- python=3.11.7
- pip<=24.0
- pip:
  - mlflow==2.14.1
  - cloudpickle==3.0.0
  - scikit-learn==1.5.0
name: mlflow-env
"""

BENIGN_PYTHON_ENV = """\
python: 3.11.7
build_dependencies:
- pip==24.0
- setuptools
- wheel==0.43.0
dependencies:
- -r requirements.txt
"""

BENIGN_REQUIREMENTS = "mlflow==2.14.1\ncloudpickle==3.0.0\nscikit-learn==1.5.0\n"

CUSTOM_MLMODEL = """\
flavors:
  python_function:
    code: code
    loader_module: evil_loader
    python_version: 3.11.7
mlflow_version: 2.14.1
"""

PYFUNC_MLMODEL = """\
flavors:
  python_function:
    cloudpickle_version: 3.0.0
    env:
      conda: conda.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    model_code_path: agent.py
mlflow_version: 2.14.1
"""

HOSTILE_CONDA = """\
name: mlflow-env
channels:
- defaults
dependencies:
- python=3.11
- https://example.invalid/conda/evil-1.0-0.tar.bz2
- pip:
  - --extra-index-url https://pypi.example.invalid/simple
  - mlflow==2.14.1
  - helper @ https://example.invalid/helper-1.0.tar.gz
  - git+https://example.invalid/repo.git
  - ./vendored/pkg
"""

HOSTILE_REQUIREMENTS = "mlflow==2.14.1\n-e ../src\nlocal-1.0-py3-none-any.whl\n"


def write_model_dir(
    root: Path, mlmodel: str, conda: str = BENIGN_CONDA, requirements: str = BENIGN_REQUIREMENTS
) -> Path:
    root.mkdir()
    (root / "MLmodel").write_text(mlmodel)
    (root / "conda.yaml").write_text(conda)
    (root / "python_env.yaml").write_text(BENIGN_PYTHON_ENV)
    (root / "requirements.txt").write_text(requirements)
    (root / "model.pkl").write_bytes(pickle.dumps({"coef": [0.5, 1.5], "intercept": 0.1}))
    return root


def files_by_name(root: Path) -> dict[str, FileResult]:
    return {Path(f.path).name: f for f in scan(root, compute_hash=False).files}


def hits(file: FileResult) -> set[tuple[str, str | None]]:
    return {(f.rule_id, f.location.detail) for f in file.findings}


def test_benign_model_directory_is_clean(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "model", BENIGN_MLMODEL)
    files = files_by_name(root)
    assert hits(files["MLmodel"]) == {("MLFLOW-PICKLED-MODEL", "flavors.sklearn")}
    assert "model.pkl" in files["MLmodel"].findings[0].message
    for name in ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt"):
        assert files[name].verdict is Verdict.CLEAN, name
        assert files[name].issues == (), name
        assert files[name].tree.format == "mlflow", name


def test_foreign_loader_and_code_path(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "model", CUSTOM_MLMODEL)
    file = files_by_name(root)["MLmodel"]
    assert hits(file) == {
        ("MLFLOW-FOREIGN-LOADER", "flavors.python_function.loader_module"),
        ("MLFLOW-CODE-PATH", "flavors.python_function.code"),
    }
    assert file.findings[0].location.chain == (str(root / "MLmodel"),)
    loader = next(f for f in file.findings if f.rule_id == "MLFLOW-FOREIGN-LOADER")
    assert loader.severity is Severity.HIGH and "evil_loader" in loader.evidence


def test_python_model_and_models_from_code(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "model", PYFUNC_MLMODEL)
    file = files_by_name(root)["MLmodel"]
    assert hits(file) == {
        ("MLFLOW-MODEL-CODE", "flavors.python_function.model_code_path"),
        ("MLFLOW-PICKLED-MODEL", "flavors.python_function"),
    }
    assert file.verdict is Verdict.SUSPICIOUS


def test_environment_installs_from_urls_and_paths(tmp_path: Path) -> None:
    root = write_model_dir(tmp_path / "model", BENIGN_MLMODEL, HOSTILE_CONDA, HOSTILE_REQUIREMENTS)
    files = files_by_name(root)
    conda = [f.evidence for f in files["conda.yaml"].findings]
    assert {f.rule_id for f in files["conda.yaml"].findings} == {"REQUIREMENTS-REMOTE-SOURCE"}
    assert conda == [
        "https://example.invalid/conda/evil-1.0-0.tar.bz2",
        "--extra-index-url https://pypi.example.invalid/simple",
        "helper @ https://example.invalid/helper-1.0.tar.gz",
        "git+https://example.invalid/repo.git",
        "./vendored/pkg",
    ]
    assert hits(files["requirements.txt"]) == {
        ("REQUIREMENTS-REMOTE-SOURCE", "line 2"),
        ("REQUIREMENTS-REMOTE-SOURCE", "line 3"),
    }


def test_yaml_is_never_constructed_into_objects(tmp_path: Path) -> None:
    path = tmp_path / "MLmodel"
    path.write_text("flavors: !!python/object/apply:os.system ['touch marker']\n")
    file = scan(path, compute_hash=False).files[0]
    (finding,) = file.findings
    assert finding.rule_id == "YAML-PYTHON-TAG" and finding.location.detail == "line 1"
    assert "os.system" in finding.evidence
    assert file.verdict is Verdict.SUSPICIOUS
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize(
    "text",
    ["hello world\n", "just one line", "import os\nos.system('x')\n", "name: x\nvalue: 3\n"],
)
def test_ordinary_text_is_not_claimed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "note.txt"
    path.write_text(text)
    assert scan(path, compute_hash=False).files[0].tree.format != "mlflow"


@pytest.mark.parametrize(
    ("line", "risky"),
    [
        ("numpy==1.26.4", False),
        ("torch>=2.0,<3 ; python_version >= '3.9'", False),
        ("-r requirements.txt", False),
        ("--index-url https://example.invalid/simple", True),
        ("-i https://example.invalid/simple", True),
        ("pkg @ file:///tmp/pkg", True),
        ("https://example.invalid/pkg.whl", True),
        ("/abs/path/pkg.tar.gz", True),
    ],
)
def test_requirement_risk(line: str, risky: bool) -> None:
    assert (mlflow_format.requirement_risk(line) is not None) is risky


def test_python_source_that_mentions_flavors_is_not_an_mlflow_file(tmp_path: Path) -> None:
    path = tmp_path / "test_something.py"
    path.write_text('TEXT = """\nflavors:\n  python_function: {loader_module: x\n"""\nprint(TEXT)\n')
    file = scan(path, compute_hash=False).files[0]
    assert file.issues == () and file.findings == () and file.verdict is Verdict.CLEAN


def test_a_plain_list_of_urls_is_not_a_requirements_file(tmp_path: Path) -> None:
    path = tmp_path / "examples.txt"
    path.write_text("# setup.cfg examples\nhttps://example.org/a/setup.cfg\nhttps://example.org/b/setup.cfg\n")
    file = scan(path, compute_hash=False).files[0]
    assert file.findings == () and file.tree.format == "data"
