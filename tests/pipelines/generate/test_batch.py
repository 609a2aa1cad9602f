"""Batch generation on the tests' local Ray: one bad row among good ones is recorded with its reason, the rest
finish, and a rerun skips the rows already done."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from thpad.pipelines.generate.batch import read_jobs, run_batch
from thpad.pipelines.ray_env import RayConfig
from thpad.storage.uri import S3Config


def test_a_bad_row_is_recorded_and_the_rest_finish(tiny_bundle, portrait_path, speech_path, ray_local,
                                                   ray_head, tmp_path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,image,audio,seed\n"
                    f"a,{portrait_path},{speech_path},1\n"
                    f"bad,{tmp_path / 'missing.jpg'},{speech_path},\n"
                    f"b,{portrait_path},{speech_path},2\n")
    out = tmp_path / "out"
    ray = RayConfig(address=ray_head.gcs_address, num_cpus=2)
    summary = run_batch(str(jobs), str(out), str(tiny_bundle), ray, S3Config(), workers=1)
    assert summary == {"jobs": 3, "skipped": 0, "ok": 2, "failed": 1}
    rows = {r["id"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    assert rows["bad"]["status"] == "failed" and "missing.jpg" in rows["bad"]["reason"]
    assert Path(rows["a"]["video"]).is_file() and Path(rows["b"]["sidecar"]).is_file()
    again = run_batch(str(jobs), str(out), str(tiny_bundle), ray, S3Config(), workers=1)
    assert again == {"jobs": 3, "skipped": 2, "ok": 2, "failed": 1}


def test_jobs_tables_are_checked(tmp_path) -> None:
    bad = tmp_path / "jobs.csv"
    bad.write_text("image\nx.jpg\n")
    try:
        read_jobs(str(bad))
    except ValueError as err:
        assert "no image or audio" in str(err)
    else:
        raise AssertionError("a row without audio was accepted")
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('{"image": "a.jpg", "audio": "a.wav", "keyframes": "3=b.jpg"}\n')
    assert read_jobs(str(jsonl))[0]["id"] == "row-000000"
