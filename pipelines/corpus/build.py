"""Builds the whole sample corpus: plans every clip, renders the missing ones in worker processes
(one identity per task, so each worker loads dlib once per identity), then writes ``corpus.json``.

Resumable: a clip whose mp4 and truth JSON both exist is skipped, and every file is written under a
temporary name first, so a killed run leaves nothing half-written under a final name.
"""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from thpad.codec import to_dict
from thpad.pipelines.corpus.clip import is_complete, render_clip
from thpad.pipelines.corpus.config import CorpusConfig
from thpad.pipelines.corpus.plan import ClipPlan, plan_clips, plan_identities, test_portraits
from thpad.pipelines.corpus.portraits import PORTRAITS
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.storage.files import atomic_write_json, remove_partials

log = logging.getLogger(__name__)


def build_corpus(cfg: CorpusConfig, out: str | Path, progress: bool = True) -> dict:
    """Write the corpus to ``out`` and return its summary (also written as ``out/corpus.json``)."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    removed = remove_partials(root)
    if removed:
        log.info("removed %d partial files left by an earlier run", removed)
    plans = plan_clips(cfg)
    todo = [p for p in plans if not is_complete(p, root)]
    log.info("sample corpus: %d clips planned, %d already complete, %d to render with %d worker(s)",
             len(plans), len(plans) - len(todo), len(todo), cfg.workers)
    groups = [list(g) for _, g in itertools.groupby(todo, key=lambda p: p.identity.index)]
    with tqdm(total=len(todo), desc="rendering clips", unit="clip", disable=not progress) as bar:
        if cfg.workers <= 1:
            for group in groups:
                bar.update(_render_group(group, cfg, root))
        else:
            with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
                for done in pool.map(_render_group, groups, itertools.repeat(cfg), itertools.repeat(root)):
                    bar.update(done)
    summary = corpus_summary(cfg, plans)
    atomic_write_json(root / "corpus.json", summary)
    return summary


def _render_group(group: list[ClipPlan], cfg: CorpusConfig, root: Path) -> int:
    landmarker = FaceLandmarker()
    for plan in group:
        render_clip(plan, cfg, root, landmarker)
    return len(group)


def corpus_summary(cfg: CorpusConfig, plans: list[ClipPlan]) -> dict:
    """What ``corpus.json`` says: config, portrait sources, identities and clip paths."""
    return {
        "config": to_dict(cfg),
        "portraits": [{"name": p.name, "package": p.package, "file": p.relpath} for p in PORTRAITS],
        "test_portraits": list(test_portraits(cfg)),
        "identities": [{"identity": i.identity, "portrait": i.portrait, "split": i.split,
                        "variation": i.variation.to_json()} for i in plan_identities(cfg)],
        "clips": [str(p.clip.relpath(".mp4")) for p in plans],
    }
