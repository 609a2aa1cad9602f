"""The training harness's input fingerprints (what must make a training stage start fresh instead of resuming), and
the run history kept in the training state, read back from a checkpoint into the stage's DVC metrics and plots."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from thpad.pipelines.train.harness import HISTORY_KEY, STATE_FILE, History, export_dvc_outputs, read_history
from thpad.storage.dvc_outputs import TRAIN, VAL
from thpad.storage.fingerprint import shards_fingerprint
from thpad.storage.manifest import manifest_uri
from thpad.storage.uri import Storage, join


def write_folder(root: Path, records: dict[str, dict]) -> str:
    """A preprocess out folder with a manifest and the given progress records (shard name -> record)."""
    folder = str(root)
    Path(manifest_uri(folder)).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest_uri(folder)).write_bytes(b"the same manifest")
    (root / "progress").mkdir(exist_ok=True)
    for name, record in records.items():
        Path(join(folder, "progress", name + ".json")).write_text(json.dumps(record))
    return folder


def test_shards_fingerprint_follows_the_shards_content(tmp_path) -> None:
    storage = Storage()
    record = {"fingerprint": "cfg", "shard": "train-000000.tar", "sha256": "aaaa", "manifest": []}
    base = shards_fingerprint(write_folder(tmp_path / "a", {"train-000000.tar": record}), storage)
    again = shards_fingerprint(write_folder(tmp_path / "b", {"train-000000.tar": record}), storage)
    assert again == base  # content, not place
    # Same clip names, same preprocessing config, other pixels (e.g. a re-rendered corpus): another key.
    rerendered = write_folder(tmp_path / "c", {"train-000000.tar": {**record, "sha256": "bbbb"}})
    assert shards_fingerprint(rerendered, storage) != base
    reconfigured = write_folder(tmp_path / "d", {"train-000000.tar": {**record, "fingerprint": "other"}})
    assert shards_fingerprint(reconfigured, storage) != base


def test_history_records_rows_and_drops_steps_recorded_again() -> None:
    history = History()
    for step in (1, 2, 3):
        history.add(TRAIN, step, 4 * step, {"train/loss": 1.0 / step})
    history.add(VAL, 2, 8, {"val/fd": 3.0})
    history.add(VAL, 2, 8, {})  # a rank without validation data records nothing
    history.add(TRAIN, 2, 8, {"train/loss": 0.4})  # a step at or before the last one replaces what follows it
    assert history.rows[TRAIN] == [{"step": 1, "samples": 4, "train/loss": 1.0},
                                   {"step": 2, "samples": 8, "train/loss": 0.4}]
    assert history.rows[VAL] == [{"step": 2, "samples": 8, "val/fd": 3.0}]
    again = History()
    again.load_state_dict(history.state_dict())
    assert again.rows == history.rows


def test_history_is_read_back_from_a_checkpoint_into_dvc_outputs(tmp_path) -> None:
    import ray.train

    history = History()
    history.add(TRAIN, 1, 4, {"train/loss": 2.0})
    history.add(VAL, 1, 4, {"val/fd_s2.5": 1.5})
    state_dir = tmp_path / "checkpoint"
    state_dir.mkdir()
    torch.save({"model": {"w": torch.zeros(3)}, HISTORY_KEY: history.state_dict(), "step": 1}, state_dir / STATE_FILE)
    checkpoint = ray.train.Checkpoint.from_directory(str(state_dir))
    assert read_history(checkpoint) == history.state_dict()
    result = SimpleNamespace(metrics={"step": 1, "cur_nsamples": 4, "val/fd_s2.5": 1.5}, checkpoint=checkpoint)

    def rename(metrics: dict) -> dict:
        return {key.replace("_s2.5", ""): value for key, value in metrics.items()}

    written = export_dvc_outputs(result, "train_prior", tmp_path / "metrics", tmp_path / "plots", rename)
    assert json.loads(written[0].read_text()) == {"step": 1, "samples": 4, "train": {"loss": 2.0}, "val": {"fd": 1.5}}
    assert written[2].read_text() == "step,samples,val/fd\n1,4,1.5\n"

    torch.save({"model": {"w": torch.zeros(3)}, "step": 1}, state_dir / STATE_FILE)  # a state from older code
    assert read_history(checkpoint) == {TRAIN: [], VAL: []}
