"""Preprocessing from and to S3 for real (moto's server on 127.0.0.1), a server that dies mid-run,
and a run killed mid-way that resumes to byte-identical shards."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.storage.s3server import S3Server
from thpad.pipelines.preprocess.run import run_preprocess
from thpad.storage.manifest import list_shards, manifest_uri, read_manifest
from thpad.storage.readers import iter_clips
from thpad.storage.uri import Storage, StorageError, join

REPO = Path(__file__).resolve().parents[3]
BUCKET = "thpad-pre"


@pytest.fixture(scope="module")
def server():
    s3 = S3Server().start()
    Storage(s3.config()).client().create_bucket(Bucket=BUCKET)
    yield s3
    s3.stop()


def _upload(root: Path, prefix: str, storage: Storage) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            storage.upload_file_atomic(path, join(prefix, str(path.relative_to(root))))


def test_s3_to_s3(micro_corpus, micro_params, ray_local, server) -> None:
    storage = Storage(server.config(max_attempts=3))
    _upload(micro_corpus[0], f"s3://{BUCKET}/corpus", storage)
    cfg = dataclasses.replace(micro_params.preprocess, source=f"s3://{BUCKET}/corpus", out=f"s3://{BUCKET}/out",
                              s3=server.config(max_attempts=3))
    summary = run_preprocess(cfg, storage)
    assert summary["accepted"] == 5 and summary["rejected"] == 0
    assert read_manifest(manifest_uri(cfg.out), storage).num_rows == 5
    shards = [s for split in ("train", "val", "test") for s in list_shards(cfg.out, split, storage)]
    assert shards and all(s.startswith(f"s3://{BUCKET}/out/shards/") for s in shards)
    clips = list(iter_clips(shards, storage))
    keys = read_manifest(manifest_uri(cfg.out), storage).column("key").to_pylist()
    assert sorted(c.key for c in clips) == sorted(keys)


def _stop_when_first_record(server: S3Server, storage: Storage, prefix: str, stopped: threading.Event) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if storage.list_files(prefix):
            server.stop()
            stopped.set()
            return
        time.sleep(0.05)


def test_server_dies_mid_run_then_rerun_completes(micro_corpus, micro_params, ray_local, tmp_path) -> None:
    dying = S3Server().start()
    storage = Storage(dying.config())
    storage.client().create_bucket(Bucket=BUCKET)
    out = f"s3://{BUCKET}/dying"
    cfg = dataclasses.replace(micro_params.preprocess, source=str(micro_corpus[0]), out=out, workers=1,
                              s3=dying.config())
    stopped = threading.Event()
    watcher = threading.Thread(target=_stop_when_first_record,
                               args=(dying, Storage(dying.config()), join(out, "progress"), stopped))
    watcher.start()
    try:
        with pytest.raises(StorageError) as failure:  # the actor's error type reaches the caller
            run_preprocess(cfg, storage)
        watcher.join()
        assert stopped.is_set(), "the run ended before the server could be stopped mid-way"
        assert f"s3://{BUCKET}/dying/" in str(failure.value), str(failure.value)[-2000:]
        dying.start()  # same port; moto keeps the objects in memory
        summary = run_preprocess(cfg, Storage(dying.config()))
        assert summary["accepted"] == 5 and summary["shards_resumed"] >= 1
    finally:
        dying.stop()


def _params_file(tmp_path: Path, micro_params_path: Path, corpus: Path, out: Path) -> Path:
    params = yaml.safe_load(micro_params_path.read_text())
    params["paths"].update({"corpus": str(corpus), "preprocessed": str(out)})
    params["runtime"]["workers"]["preprocess"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_killed_run_resumes_to_identical_shards(micro_corpus, micro_params, ray_local, tmp_path) -> None:
    corpus = micro_corpus[0]
    clean = tmp_path / "clean"
    run_preprocess(dataclasses.replace(micro_params.preprocess, source=str(corpus), out=str(clean)), Storage())
    killed = tmp_path / "killed"
    params = _params_file(tmp_path, REPO / "profiles" / "micro.yaml", corpus, killed)
    cmd = [str(Path(sys.executable).parent / "thpad"), "preprocess", "--params", str(params)]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not list((killed / "progress").glob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        assert list((killed / "progress").glob("*.json")), "no shard finished in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.name for p in (killed / "shards").glob("*.tar")}
    assert finished and len(finished) < len(list((clean / "shards").glob("*.tar"))), "nothing left to resume"
    summary = run_preprocess(dataclasses.replace(micro_params.preprocess, source=str(corpus), out=str(killed)),
                             Storage())
    assert summary["shards_resumed"] >= 1
    for shard in sorted((clean / "shards").glob("*.tar")):
        assert (killed / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    assert not list(killed.rglob(".*partial*")), "the rerun left the killed run's partial files behind"
