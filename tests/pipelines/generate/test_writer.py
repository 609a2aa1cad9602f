"""The streaming mp4 writer, checked by decoding its output with PyAV: frames, audio timing and content,
interleaving, determinism, the temporary-name protocol; and the grid and resize helpers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
import scipy.signal

from thpad.pipelines.generate.writer import StreamingVideoWriter, grid, resize_frames
from thpad.pipelines.media.video import temp_path

FPS, RATE, SIZE, CHUNK, NUM_CHUNKS = 25, 16000, 56, 50, 3
NUM_FRAMES = CHUNK * NUM_CHUNKS  # 150 frames, 6 s
SINE_HZ = 440.0


def _frames(chunk: int, size: int = SIZE) -> np.ndarray:
    """Chunk ``chunk`` of smooth waves moving 2 px a frame: (CHUNK, size, size, 3) uint8."""
    i = np.arange(chunk * CHUNK, (chunk + 1) * CHUNK)[:, None, None]  # (t, 1, 1)
    y = np.arange(size)[None, :, None]  # (1, H, 1)
    x = np.arange(size)[None, None, :]  # (1, 1, W)
    red = 128 + 80 * np.sin(2 * np.pi * (x + 2 * i) / 56)
    green = 128 + 80 * np.cos(2 * np.pi * (y - i) / 56)
    blue = 60 + x + y
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1).round().astype(np.uint8)  # (t, H, W, 3)


def _sine(n: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * SINE_HZ * np.arange(n) / RATE)).astype(np.float32)  # (n,)


def _audio(seconds: float = NUM_FRAMES / FPS) -> np.ndarray:
    n = int(round(seconds * RATE))
    noise = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    return _sine(n) + 0.05 * noise  # (n,)


def _write(path: Path, audio: np.ndarray | None) -> Path:
    with StreamingVideoWriter(path, FPS, audio, sample_rate=RATE) as writer:
        for k in range(NUM_CHUNKS):
            writer.write(_frames(k))
        assert writer.frames_written == NUM_FRAMES
    return path


def _decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)[0]  # (N,)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("writer") / "clip.mp4", _audio())


def test_video_stream(clip: Path) -> None:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == FPS
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == NUM_FRAMES
    assert frames[0].shape == (SIZE, SIZE, 3)


def test_frames_survive(clip: Path) -> None:
    with av.open(str(clip)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])  # (T, H, W, 3)
    expected = np.concatenate([_frames(k) for k in range(NUM_CHUNKS)])  # (T, H, W, 3)
    errors = np.abs(decoded.astype(np.float32) - expected).mean(axis=(1, 2, 3))  # (T,)
    assert errors.max() < 6, errors.max()
    # Frame i is frame i, not a neighbour: the gradient moves, so a shift by one frame would cost more.
    shifted = np.abs(decoded[1:].astype(np.float32) - expected[:-1]).mean()
    assert shifted > errors.mean()


def test_audio_stream(clip: Path) -> None:
    with av.open(str(clip)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        assert stream.rate == RATE
        assert stream.codec_context.layout.nb_channels == 1
    decoded = _decode_audio(clip)
    # 150 frames * 640 samples = 96000; AAC pads to whole 1024-sample frames, priming is trimmed by the edit list.
    assert abs(len(decoded) - NUM_FRAMES * RATE // FPS) <= 2048, len(decoded)


def test_audio_content(clip: Path) -> None:
    decoded = _decode_audio(clip)
    audio = _audio()
    # The delay (encoder priming left untrimmed, if any) is the lag in [0, 2048] that maximises the
    # cross-correlation with the input; the noise component makes that peak unique (the sine alone repeats).
    corr = scipy.signal.correlate(decoded, audio, mode="full")  # (len(decoded) + len(audio) - 1,)
    lags = scipy.signal.correlation_lags(len(decoded), len(audio), mode="full")
    window = (lags >= 0) & (lags <= 2048)
    delay = int(lags[window][np.argmax(corr[window])])
    n = min(len(decoded) - delay, len(audio))
    r = np.corrcoef(decoded[delay:delay + n], _sine(len(audio))[:n])[0, 1]
    assert r > 0.9, (delay, r)


def _longest_video_run(path: Path) -> int:
    """The most video packets in a row, in demux (file) order."""
    with av.open(str(path)) as container:
        kinds = "".join(p.stream.type[0] for p in container.demux() if p.size)  # "vavva..."
    return max(len(run) for run in kinds.split("a"))


def test_packets_interleaved(clip: Path) -> None:
    with av.open(str(clip)) as container:
        kinds = [p.stream.type for p in container.demux() if p.size]
    video_at = [i for i, kind in enumerate(kinds) if kind == "video"]
    audio_at = [i for i, kind in enumerate(kinds) if kind == "audio"]
    assert len(video_at) == NUM_FRAMES
    between = [i for i in audio_at if video_at[0] < i < video_at[-1]]
    assert len(between) > len(audio_at) // 2, "".join(k[0] for k in kinds)
    assert _longest_video_run(clip) <= 4  # a 64 ms AAC frame per 1.6 video frames


def test_audio_muxed_while_writing(tmp_path: Path) -> None:
    # The muxer's own interleaving queue would reorder audio encoded only at close() into a short file (it holds up
    # to 10 s of packets in memory), so only a longer clip shows whether write() muxes the audio as it goes: 16 s.
    path = tmp_path / "long.mp4"
    num_chunks = 8
    with StreamingVideoWriter(path, FPS, _audio(num_chunks * CHUNK / FPS), sample_rate=RATE) as writer:
        for k in range(num_chunks):
            writer.write(_frames(k, size=16))
    assert _longest_video_run(path) <= 4


def test_byte_identical(tmp_path: Path, clip: Path) -> None:
    again = _write(tmp_path / "again.mp4", _audio())
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(clip.read_bytes()).digest()


def test_nothing_at_path_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "out" / "clip.mp4"
    with StreamingVideoWriter(path, FPS, _audio(2.0), sample_rate=RATE) as writer:
        writer.write(_frames(0))
        assert temp_path(path).exists()
        assert not path.exists()
    assert path.exists()
    assert not temp_path(path).exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]


def test_close_returns_path(tmp_path: Path) -> None:
    writer = StreamingVideoWriter(str(tmp_path / "clip.mp4"), FPS, None)
    writer.write(_frames(0))
    assert writer.close() == tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(_frames(1))


def test_exception_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with pytest.raises(KeyError), StreamingVideoWriter(path, FPS, _audio()) as writer:
        writer.write(_frames(0))
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = StreamingVideoWriter(tmp_path / "clip.mp4", FPS, _audio())
    writer.write(_frames(0))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_odd_size_refused(tmp_path: Path) -> None:
    writer = StreamingVideoWriter(tmp_path / "clip.mp4", FPS, None)
    with pytest.raises(ValueError, match="H.264 yuv420p needs an even width and height"):
        writer.write(_frames(0, size=55))


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8),
                                 np.zeros((2, 8, 8, 4), np.uint8)])
def test_bad_frames_refused(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(t, H, W, 3\) uint8"):
        StreamingVideoWriter(tmp_path / "clip.mp4", FPS, None).write(bad)


def test_mismatched_chunk_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with pytest.raises(ValueError, match="first chunk was 56x56"), StreamingVideoWriter(path, FPS, None) as writer:
        writer.write(_frames(0))
        writer.write(_frames(1, size=64))
    assert list(tmp_path.iterdir()) == []


def test_close_without_frames_refused(tmp_path: Path) -> None:
    writer = StreamingVideoWriter(tmp_path / "clip.mp4", FPS, _audio())
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_video_only(tmp_path: Path) -> None:
    path = _write(tmp_path / "clip.mp4", None)
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0
        assert sum(1 for _ in container.decode(video=0)) == NUM_FRAMES


def test_audio_longer_than_video_kept(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with StreamingVideoWriter(path, FPS, _audio(4.0), sample_rate=RATE) as writer:
        writer.write(_frames(0))  # 2 s of video
    assert abs(len(_decode_audio(path)) - 4 * RATE) <= 1024


def test_threads(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with StreamingVideoWriter(path, FPS, _audio(2.0), sample_rate=RATE, threads=2) as writer:
        writer.write(_frames(0))
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == CHUNK


def test_grid_one_row() -> None:
    chunks = [_frames(0, size=8) + k for k in range(3)]
    tiled = grid(chunks)
    assert tiled.shape == (CHUNK, 8, 24, 3) and tiled.dtype == np.uint8
    for k, chunk in enumerate(chunks):
        np.testing.assert_array_equal(tiled[:, :, 8 * k:8 * (k + 1)], chunk)


def test_grid_columns_pads() -> None:
    chunks = [_frames(0, size=8) + k for k in range(3)]
    tiled = grid(chunks, columns=2)
    assert tiled.shape == (CHUNK, 16, 16, 3)
    np.testing.assert_array_equal(tiled[:, :8, 8:], chunks[1])
    np.testing.assert_array_equal(tiled[:, 8:, :8], chunks[2])
    assert not tiled[:, 8:, 8:].any()


def test_grid_refuses_mixed_shapes() -> None:
    with pytest.raises(ValueError, match="share one"):
        grid([_frames(0, size=8), _frames(0, size=10)])


@pytest.mark.parametrize("size", [32, 56, 112])
def test_resize_frames(size: int) -> None:
    frames = _frames(0)
    resized = resize_frames(frames, size)
    assert resized.shape == (CHUNK, size, size, 3) and resized.dtype == np.uint8
    # Smooth gradients keep their mean colour through either interpolation.
    assert np.abs(resized.mean(axis=(1, 2)) - frames.mean(axis=(1, 2))).max() < 2
