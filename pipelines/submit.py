"""Cluster submission: run thpad's stages as a Ray job on an existing cluster through the Ray Jobs API.

What a job is made of (our choices; the paper names no infrastructure):

1. The *package*: the project folder zipped without ``SubmitConfig.excludes`` (environments, data,
   caches, outputs), with the chosen params file stored at its top as ``params.yaml``. It becomes the
   job's ``working_dir``, which Ray unpacks on the cluster, makes the current folder of the job's
   driver and puts first on ``PYTHONPATH`` for the driver and every worker. The package folders are
   stored where the installed namespace has them (``models/`` as ``thpad/models/``, after pyproject's
   package-dir), so ``thpad`` imports from the upload even where the cluster image does not have it.
2. The *entrypoint*: each stage's command, ``python -m thpad.stages.cli <command> --params params.yaml``,
   joined with ``&&`` in DAG order. DVC stays the local orchestrator (the upload carries no git or
   DVC state); on the cluster a stage simply runs, resuming its own work where it can.
3. The *runtime env*: no pip install unless ``submit.pip`` lists requirements; ``env_vars`` and the
   ``pass_env`` variables. Ray sets ``RAY_ADDRESS`` in the driver, so ``ensure_ray`` joins the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from thpad.pipelines.submit_config import SubmitConfig

# DVC stage name -> thpad command, in the DAG's order (dvc.yaml).
STAGE_COMMANDS = {
    "sample_corpus": "sample-corpus",
    "preprocess": "preprocess",
    "train_contrastive": "train-contrastive",
    "train_disentangle": "train-disentangle",
    "extract_features": "extract-features",
    "train_prior": "train-prior",
    "train_prior_ar": "train-prior-ar",
}
ALL = "all"
JOB_PARAMS = "params.yaml"  # where the chosen params file sits in the package
MAX_PACKAGE_BYTES = 500 * 2**20  # Ray's limit for a working_dir package (one gRPC message)
_ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


@dataclass(frozen=True)
class Package:
    """The zipped project a job runs in."""

    path: Path
    files: int
    bytes: int  # uncompressed
    zip_bytes: int
    top_level: tuple[str, ...]  # the folders and files uploaded at the top

    def summary(self) -> str:
        """One line for the terminal: counts, sizes and what is at the top."""
        return (f"package: {self.files} files, {self.bytes / 2**20:.1f} MiB ({self.zip_bytes / 2**20:.1f} MiB "
                f"zipped): {', '.join(self.top_level)}")


@dataclass(frozen=True)
class JobSpec:
    """Everything a job submission sends."""

    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    package: Package


def prepare_job(stages: Sequence[str], params_file: Path, cfg: SubmitConfig, root: Path, out_dir: Path,
                environ: Mapping[str, str]) -> JobSpec:
    """Package ``root`` into ``out_dir`` and describe the job that runs ``stages`` with ``params_file``."""
    package = build_package(root, params_file, cfg.excludes, out_dir)
    metadata = {"thpad_stages": ",".join(stages), "thpad_params": str(params_file)}
    return JobSpec(job_entrypoint(stages), build_runtime_env(package.path, cfg, environ), metadata, package)


def describe_job(spec: JobSpec, address: str | None, root: Path) -> dict[str, Any]:
    """What ``--dry-run`` prints: the address, entrypoint, runtime env and package (the zip itself is
    temporary, so ``working_dir`` names the folder it is made from)."""
    pkg = spec.package
    return {"address": address, "entrypoint": spec.entrypoint,
            "runtime_env": {**spec.runtime_env, "working_dir": f"{root} (zipped)"}, "metadata": spec.metadata,
            "package": {"files": pkg.files, "bytes": pkg.bytes, "zip_bytes": pkg.zip_bytes,
                        "top_level": list(pkg.top_level)}}


def resolve_stages(names: Sequence[str]) -> list[str]:
    """The stages to run, in DAG order and each once; ``all`` is every stage.

    Raises:
        ValueError: an unknown name (the message lists the choices).
    """
    if not names:
        raise ValueError(f"name a stage or '{ALL}' (stages: {', '.join(STAGE_COMMANDS)})")
    unknown = [n for n in names if n != ALL and n not in STAGE_COMMANDS]
    if unknown:
        raise ValueError(f"unknown stage '{unknown[0]}' (stages: {', '.join(STAGE_COMMANDS)}, or '{ALL}')")
    wanted = set(STAGE_COMMANDS) if ALL in names else set(names)
    return [s for s in STAGE_COMMANDS if s in wanted]


def job_entrypoint(stages: Sequence[str]) -> str:
    """The job's shell command: the stages' commands, in order, stopping at the first failure."""
    return " && ".join(f"python -m thpad.stages.cli {STAGE_COMMANDS[s]} --params {JOB_PARAMS}" for s in stages)


def is_excluded(rel: PurePosixPath, excludes: Sequence[str]) -> bool:
    """Whether a project-relative path is left out (see ``SubmitConfig.excludes``)."""
    for pattern in excludes:
        pattern = pattern.strip("/")
        if "/" in pattern:
            if fnmatch.fnmatch(rel.as_posix(), pattern) or fnmatch.fnmatch(rel.as_posix(), pattern + "/*"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in rel.parts):
            return True
    return False


def build_package(root: Path, params_file: Path, excludes: Sequence[str], out_dir: Path) -> Package:
    """Zip ``root`` without ``excludes``, with ``params_file`` as ``params.yaml`` at the top.

    The zip is reproducible (sorted entries, fixed timestamps), so an unchanged project uploads once:
    Ray names packages by content hash and skips one the cluster already has.

    Raises:
        ValueError: the package exceeds Ray's limit (the message names the largest top-level entries).
    """
    files = sorted(_project_files(root, excludes))
    folders = package_folders(root)
    path = out_dir / "thpad-job.zip"
    total = 0
    arcnames = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            src = params_file if rel.as_posix() == JOB_PARAMS else root / rel
            arcnames.append(archive_name(rel, folders))
            total += _add_file(zf, src, arcnames[-1].as_posix())
        if PurePosixPath(JOB_PARAMS) not in files:
            total += _add_file(zf, params_file, JOB_PARAMS)
    zip_bytes = path.stat().st_size
    if zip_bytes >= MAX_PACKAGE_BYTES:
        raise ValueError(f"the project package is {zip_bytes / 2**20:.0f} MiB, over Ray's "
                         f"{MAX_PACKAGE_BYTES / 2**20:.0f} MiB limit; largest entries: "
                         f"{_largest(root, files)}; add them to submit.excludes")
    top = tuple(sorted({rel.parts[0] for rel in arcnames} | {JOB_PARAMS}))
    return Package(path, len(files) + (PurePosixPath(JOB_PARAMS) not in files), total, zip_bytes, top)


def package_folders(root: Path) -> dict[str, str]:
    """Folder -> where the installed namespace puts it (``models`` -> ``thpad/models``), read from
    ``[tool.setuptools.package-dir]`` in ``root/pyproject.toml``; empty without one."""
    pyproject = root / "pyproject.toml"
    table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("setuptools", {}).get("package-dir", {}) \
        if pyproject.is_file() else {}
    return {folder.strip("/"): package.replace(".", "/") for package, folder in table.items()}


def archive_name(rel: PurePosixPath, folders: Mapping[str, str]) -> PurePosixPath:
    """A project file's name in the job package: under its package's installed path when a package folder holds
    it (the longest matching folder), else as it is in the project."""
    for folder in sorted(folders, key=len, reverse=True):
        if rel.as_posix().startswith(folder + "/"):
            return PurePosixPath(folders[folder]) / rel.relative_to(folder)
    return rel


def _project_files(root: Path, excludes: Sequence[str]) -> Iterator[PurePosixPath]:
    for folder, dirs, names in os.walk(root):
        base = PurePosixPath(Path(folder).relative_to(root).as_posix())
        dirs[:] = [d for d in dirs if not is_excluded(base / d, excludes)]
        for name in names:
            rel = base / name
            if not is_excluded(rel, excludes) and (Path(folder) / name).is_file():
                yield rel


def _add_file(zf: zipfile.ZipFile, src: Path, arcname: str) -> int:
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (src.stat().st_mode & 0o777 | 0o100000) << 16  # keep the executable bits
    info.compress_type = zipfile.ZIP_DEFLATED
    data = src.read_bytes()
    zf.writestr(info, data)
    return len(data)


def _largest(root: Path, files: Sequence[PurePosixPath]) -> str:
    sizes: dict[str, int] = {}
    for rel in files:
        sizes[rel.parts[0]] = sizes.get(rel.parts[0], 0) + (root / rel).stat().st_size
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{name} ({size / 2**20:.0f} MiB)" for name, size in top)


def build_runtime_env(package: Path, cfg: SubmitConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    """The job's runtime env: the package as working_dir; pip and env_vars only when configured."""
    env: dict[str, Any] = {"working_dir": str(package)}
    env_vars = {**{k: environ[k] for k in cfg.pass_env if k in environ}, **cfg.env_vars}
    if env_vars:
        env["env_vars"] = env_vars
    if cfg.pip:
        env["pip"] = list(cfg.pip)
    return env


def resolve_address(flag: str | None, cfg: SubmitConfig, environ: Mapping[str, str]) -> str:
    """The Jobs API address: ``--address``, else ``submit.address``, else the environment.

    Raises:
        ValueError: none is set.
    """
    for value in (flag, cfg.address, *(environ.get(k) for k in _ADDRESS_ENV)):
        if value:
            return value
    raise ValueError("no Ray cluster address: pass --address http://HEAD:8265 (the cluster's dashboard, which "
                     "serves the Jobs API), set submit.address in params, or export RAY_ADDRESS")


def connect(address: str) -> Any:
    """A ``JobSubmissionClient`` for exactly ``address``.

    Ray lets ``RAY_API_SERVER_ADDRESS``/``RAY_ADDRESS`` override the address a client is given; thpad
    resolved them already (``resolve_address``), so they are hidden while the client connects.

    Raises:
        ConnectionError: nothing answers at ``address``.
    """
    from ray.job_submission import JobSubmissionClient

    with _hidden_env(_ADDRESS_ENV):
        return JobSubmissionClient(address)


@contextlib.contextmanager
def _hidden_env(names: Sequence[str]) -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in names if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def follow_job(client: Any, job_id: str, write: Callable[[str], None], poll_s: float = 1.0) -> Any:
    """Print the job's logs as they come (``tail_job_logs``) and return its final ``JobStatus``.

    If the log stream breaks before the job ends, the rest of the logs is polled instead.
    """
    printed = 0

    async def tail() -> None:
        nonlocal printed
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)
            printed += len(chunk)

    try:
        asyncio.run(tail())
    except (RuntimeError, OSError) as err:
        write(f"[thpad] log stream interrupted ({err}); polling the job instead\n")
    while True:
        status = client.get_job_status(job_id)
        logs = client.get_job_logs(job_id)
        if len(logs) > printed:
            write(logs[printed:])
            printed = len(logs)
        if status.is_terminal():
            return status
        time.sleep(poll_s)


def failure_reason(client: Any, job_id: str) -> str:
    """The first line of Ray's account of why a job did not succeed (its type and message)."""
    info = client.get_job_info(job_id)
    message = (info.message or "").strip().splitlines()
    return " ".join(x for x in (str(info.error_type or ""), message[0] if message else "") if x)
