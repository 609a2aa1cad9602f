"""Storage test fixtures: a moto S3 server per test module with fake credentials, and synthetic clips
whose pixels encode their clip and frame number (so readers can be checked after JPEG coding)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.storage.s3server import S3Server
from thpad.storage.shards import ClipSample
from thpad.storage.uri import Storage
from thpad.storage.voxceleb import sample_key

BUCKET = "thpad-test"
FPS = 25
SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory) -> Iterator[None]:
    """Fake credentials from the standard AWS variables; empty config files (not /dev/null: aiobotocore)."""
    empty = tmp_path_factory.mktemp("aws") / "empty"
    empty.write_text("")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="module")
def s3_server(aws_env) -> Iterator[S3Server]:
    """A moto S3 server for the module, with the bucket ``thpad-test``."""
    server = S3Server().start()
    Storage(server.config()).client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def s3_storage(s3_server) -> Storage:
    """A ``Storage`` talking to the module's S3 server."""
    return Storage(s3_server.config())


@pytest.fixture
def s3_root(s3_server, request) -> str:
    """A fresh ``s3://thpad-test/<test name>`` prefix."""
    return f"s3://{BUCKET}/{re.sub(r'[^A-Za-z0-9_-]', '_', request.node.name)}"


@pytest.fixture
def local_root(tmp_path: Path) -> str:
    """A fresh local folder, as a string URI."""
    return str(tmp_path / "out")


def make_clip(index: int, num_frames: int = 12, size: int = 64, identity: str | None = None) -> ClipSample:
    """A synthetic clip. Frame t of clip ``index`` has red = 10 t + 5 and green = 20 index + 10 (flat),
    blue a horizontal ramp; arrays are seeded by ``index``."""
    rng = np.random.default_rng(index)
    frames = np.empty((num_frames, size, size, 3), np.uint8)  # (T, S, S, 3)
    frames[..., 0] = (10 * np.arange(num_frames) + 5)[:, None, None]
    frames[..., 1] = 20 * index + 10
    frames[..., 2] = np.linspace(0, 255, size, dtype=np.uint8)[None, None, :]
    identity = identity or f"id{index:05d}"
    meta = {
        "identity": identity, "video": f"vid_{index}-x", "utterance": f"{index + 1:05d}", "split": "train",
        "fps": FPS, "num_frames": num_frames, "source": f"s3://corpus/{identity}/{index}.mp4",
        "detection": {"detected": num_frames, "missed": 0}, "motion": {"yaw_deg": [0.5] * num_frames},
    }
    samples = num_frames * SAMPLE_RATE // FPS
    return ClipSample(
        key=sample_key(identity, meta["video"], meta["utterance"]),
        frames=frames,
        lmk=rng.uniform(0, size, (num_frames, 68, 2)).astype(np.float32),
        mel=rng.normal(-40, 20, (80, 4 * num_frames)).astype(np.float16),
        xform=rng.normal(0, 1, (num_frames, 2, 3)).astype(np.float32),
        audio=(0.3 * np.sin(np.arange(samples) * 0.05)).astype(np.float32),
        meta=meta, sample_rate=SAMPLE_RATE,
    )


def frame_code(image: np.ndarray) -> tuple[int, int]:
    """(clip index, frame number) read back from a decoded (H, W, 3) uint8 RGB ``make_clip`` frame."""
    red, green = float(image[..., 0].mean()), float(image[..., 1].mean())
    return round((green - 10) / 20), round((red - 5) / 10)


@pytest.fixture(scope="session")
def clip_factory() -> Callable[..., ClipSample]:
    """``make_clip`` as a fixture."""
    return make_clip


@pytest.fixture(scope="session")
def read_code() -> Callable[[np.ndarray], tuple[int, int]]:
    """``frame_code`` as a fixture."""
    return frame_code
