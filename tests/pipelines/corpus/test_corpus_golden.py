"""Golden hashes of a tiny sample corpus: the corpus must be byte-identical on every machine of the CI kind
(x86-64, AMD or Intel, any OPENBLAS_CORETYPE), not just from run to run on one machine.

When a change of the corpus code or of params.yaml's ``corpus`` section changes the corpus on purpose, rerun
with THPAD_PRINT_GOLDEN=1 and paste the printed table (the dvc.lock hash of sample_corpus changes too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from thpad.pipelines.corpus.build import build_corpus
from thpad.stages.params import load_params

REPO = Path(__file__).resolve().parents[3]

# params.yaml's corpus section with identities=6 (identity 5 is a varied portrait: mirror, hue, gamma, jaw),
# clips=1, seconds=1.0, test_portraits=0, workers=1.
GOLDEN: dict[str, str] = {
    "corpus.json": "bcd1624a42cc304bc8a3114355a49050",
    "dev/mp4/id00001/9fszoL4jBhd/00001.json": "0799ea13c0850e8b4cc21896a0f6f931",
    "dev/mp4/id00001/9fszoL4jBhd/00001.mp4": "dd5545a6d5b6a7a1a9d6b10a9ec9f589",
    "dev/mp4/id00002/8Gu0O0zinoC/00001.json": "f401466fa0ef66fc18713a17c5d6cfc8",
    "dev/mp4/id00002/8Gu0O0zinoC/00001.mp4": "af2e5747068fc4472abad5011b0ce316",
    "dev/mp4/id00003/kdFeqkGMtDf/00001.json": "701bd053a712b0d193f5a256a90e5ae0",
    "dev/mp4/id00003/kdFeqkGMtDf/00001.mp4": "7efde4749d4af035a6dba4ffe49b1c55",
    "dev/mp4/id00004/pHLwYmIBGdX/00001.json": "1f0acc22c3b7ea1870618c31799f4ae4",
    "dev/mp4/id00004/pHLwYmIBGdX/00001.mp4": "0fa03edd95bfa6c1792a8ad955f0fdc4",
    "dev/mp4/id00005/DW_PDd0ZZnA/00001.json": "2ac8e4ce32df7813cfb48d3f255bb647",
    "dev/mp4/id00005/DW_PDd0ZZnA/00001.mp4": "f6d13854b2d85e677ec07819c0933015",
    "dev/mp4/id00006/FYc26EAGMqy/00001.json": "0275e5b6875e1621108a0d39200d2905",
    "dev/mp4/id00006/FYc26EAGMqy/00001.mp4": "0d39de5bb7a2247766fce75621fba19d",
}


def _md5s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_corpus_matches_golden_hashes(tmp_path: Path) -> None:
    cfg = dataclasses.replace(load_params(REPO / "params.yaml").corpus, identities=6, clips=1, seconds=1.0,
                              test_portraits=0, workers=1)
    build_corpus(cfg, tmp_path, progress=False)
    got = _md5s(tmp_path)
    if os.environ.get("THPAD_PRINT_GOLDEN"):
        print("\n".join(f"    {k!r}: {v!r}," for k, v in got.items()))
    differ = {k: (GOLDEN.get(k), got.get(k)) for k in sorted(set(GOLDEN) | set(got)) if GOLDEN.get(k) != got.get(k)}
    assert not differ, f"corpus bytes differ from the golden hashes (machine-dependent numerics?): {differ}"


def test_the_pinned_kernels_are_restored_after_the_block(monkeypatch) -> None:
    import cv2

    from thpad.pipelines.corpus.clip import SOXR_SIMD, pinned_cpu_kernels

    monkeypatch.delenv(SOXR_SIMD, raising=False)
    before = cv2.useOptimized()
    with pinned_cpu_kernels():
        assert not cv2.useOptimized() and os.environ[SOXR_SIMD] == "0"
    assert cv2.useOptimized() == before and SOXR_SIMD not in os.environ
