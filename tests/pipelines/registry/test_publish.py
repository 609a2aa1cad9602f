"""Logging and registering the tiny bundle as the thpad pyfunc: the version, its alias and tags, and what the logged
model holds (explicit signature and requirements, the code under ``thpad`` only, the bundle, the input example)."""

from __future__ import annotations

import logging
import shutil
import sys
import tomllib
from pathlib import Path

import mlflow.pyfunc
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from tests.pipelines.registry.conftest import NAME, TAGS, request_frame
from thpad.pipelines.registry.package import SUBPACKAGES, runtime_requirements, stage_code
from thpad.pipelines.registry.publish import log_bundle_model, register_candidate
from thpad.pipelines.registry.signature import model_signature
from thpad.storage.bundle import BundleError

REPO = Path(__file__).resolve().parents[3]


def test_registered_version_holds_candidate_and_the_tags(registered) -> None:
    client = MlflowClient(registered.tracking_uri)
    version = client.get_model_version_by_alias(NAME, "candidate")
    assert str(version.version) == registered.version == "1"
    assert version.tags["thpad.logged_model_id"] == registered.logged.model_id
    assert version.run_id == registered.logged.run_id
    assert {k: version.tags[k] for k in TAGS} == {k: str(v) for k, v in TAGS.items()}


def test_candidate_moves_to_each_new_version(registered) -> None:
    client = MlflowClient(registered.tracking_uri)
    first = register_candidate(client, registered.logged, "moving", {"n": 1})
    second = register_candidate(client, registered.logged, "moving", {"n": 2})
    assert (str(first.version), str(second.version)) == ("1", "2")
    assert str(client.get_model_version_by_alias("moving", "candidate").version) == "2"
    assert client.get_model_version("moving", "1").tags["n"] == "1"


def test_logged_model_has_the_explicit_signature_and_requirements(registered) -> None:
    meta = Model.load(registered.local_path / "MLmodel")
    assert meta.signature == model_signature()
    inputs = {c["name"]: (c["type"], c.get("items"), c["required"]) for c in meta.signature.inputs.to_dict()}
    assert inputs == {"image": ("binary", None, True), "audio": ("binary", None, True),
                      "keyframe_images": ("array", {"type": "binary"}, False),
                      "keyframe_frames": ("array", {"type": "long"}, False)}
    assert meta.signature.outputs.input_names() == ["video", "trajectory"]
    params = {p.name: p.default for p in meta.signature.params.params}
    assert params == {"seed": None, "guidance": None, "samples": 1, "prior": "diffusion", "sampler": None,
                      "steps": None}
    flavor = meta.flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # from code, nothing pickled
    assert flavor["config"]["max_samples"] >= 1
    assert meta.saved_input_example_info is not None
    lines = (registered.local_path / "requirements.txt").read_text().splitlines()
    assert set(runtime_requirements()) <= set(lines)
    assert "torch==2.14.1" in lines and not any(line.startswith("pytest") for line in lines)


def test_logged_model_carries_the_bundle_and_only_the_thpad_namespace(registered) -> None:
    code = registered.local_path / "code"
    assert [p.name for p in code.iterdir()] == ["thpad"]
    files = [p.relative_to(code) for p in code.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files and all(p.suffix == ".py" for p in files)
    names = {p.as_posix() for p in files}
    assert {"thpad/__init__.py", "thpad/models/talking_head.py", "thpad/storage/bundle.py",
            "thpad/pipelines/registry/pyfunc.py", "thpad/stages/cli.py"} <= names
    assert not any("tests" in p.parts for p in files)
    assert (registered.local_path / "artifacts" / "bundle" / "bundle.json").is_file()


def test_staged_code_covers_every_folder_of_the_namespace(tmp_path) -> None:
    mapped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert {name.removeprefix("thpad.") for name in mapped if name != "thpad"} == set(SUBPACKAGES)
    staged = stage_code(tmp_path)
    for package, folder in mapped.items():
        sub = staged.joinpath(*package.split(".")[1:])
        expected = {p.relative_to(REPO / folder) for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts}
        found = {p.relative_to(sub) for p in sub.rglob("*.py")}
        if package == "thpad":
            found = {p for p in found if p.parts[0] not in SUBPACKAGES}
        assert found == expected, package


def test_logging_never_loads_the_bundle_and_loading_refuses_an_altered_one(tiny_bundle, portrait_path, speech_path,
                                                                            tmp_path, caplog) -> None:
    """An altered bundle logs fine with an input example (so logging neither loads the model nor runs ``predict``,
    which would verify the bundle first) and is refused when the model loads, naming the file."""
    altered = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, altered)
    with (altered / "prior.pt").open("ab") as snapshot:
        snapshot.write(b"\0")
    client = MlflowClient(f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("thpad", artifact_location=str(tmp_path.resolve() / "mlruns")))
    with caplog.at_level(logging.WARNING):
        logged = log_bundle_model(client, run.info.run_id, altered,
                                  input_example=request_frame(portrait_path, speech_path))
    assert not [r for r in caplog.records if "fail" in r.getMessage().lower()]
    saved = list(sys.path)
    try:
        with pytest.raises(BundleError, match=r"prior\.pt does not match the sha256"):
            mlflow.pyfunc.load_model(logged.artifact_location)
    finally:
        sys.path[:] = saved
