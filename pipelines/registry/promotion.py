"""The evidence gate for the ``champion`` alias: a pure function of two versions' evaluation figures.

Each version is described by a plain dict ``{"version": ..., "fingerprint": ..., "metrics": {...}}``, where
``metrics`` has the layout of ``metrics/evaluate.json`` (docs/metrics.md) and ``fingerprint`` identifies the
evaluation (its params and the hashes of the split it ran on). Metric keys are tuples of keys, not dotted strings,
because guidance scales appear as keys such as ``"s2.5"``.

The gate, in order (``decide``):

1. Floor, applied to every challenger, the first one too: its reconstruction L1 must be below copying the source
   photo into every frame (``reconstruction.copy_photo.l1``), and its identity share must reach
   ``identity_floor``. Otherwise ``below_floor``.
2. No champion yet: ``promote``.
3. Like for like: the two evaluation fingerprints must be equal, else ``not_comparable`` (re-evaluate the
   challenger under the champion's settings first). The primary metric and its CI must be numbers on both sides.
4. Primary metric (lower is better; by default the generation protocol's SND at s=2.5 in the measured space, which
   is independent of either model's own E_v): the challenger must be lower by more than the sum of the two 95 %
   CI half widths, i.e. the intervals must not overlap. Otherwise ``keep``.
5. Guards (lip sync, identity share, reconstruction L1): the challenger may not be worse than the champion by more
   than each guard's margin, else ``keep``. A guard unavailable on both sides is skipped and said so; on one side
   only, the versions are ``not_comparable``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Path = tuple[str, ...]
Outcome = Literal["promote", "keep", "not_comparable", "below_floor"]


@dataclass(frozen=True)
class Guard:
    """A metric the challenger may not lose on by more than ``margin``."""

    path: Path
    higher_is_better: bool
    margin: float


@dataclass(frozen=True)
class PromotionConfig:
    """Which metrics decide and by how much (keys of ``metrics/evaluate.json``, docs/metrics.md).

    Attributes:
        primary, primary_ci: the primary metric (lower is better) and its 95 % CI half width.
        guards: metrics with a tolerated loss each.
        recon_l1, baseline_l1: the model's reconstruction L1 and that of copying the photo (the floor).
        identity, identity_floor: the identity share and the least share a version must reach.
    """

    primary: Path = ("measured", "s2.5", "snd")
    primary_ci: Path = ("measured", "s2.5", "ci", "snd")
    guards: tuple[Guard, ...] = (
        Guard(("measured", "s2.5", "lip_r"), higher_is_better=True, margin=0.05),
        Guard(("identity", "same_person_share"), higher_is_better=True, margin=0.05),
        Guard(("reconstruction", "l1"), higher_is_better=False, margin=0.01),
    )
    recon_l1: Path = ("reconstruction", "l1")
    baseline_l1: Path = ("reconstruction", "copy_photo", "l1")
    identity: Path = ("identity", "same_person_share")
    identity_floor: float = 0.5


@dataclass(frozen=True)
class Decision:
    """The gate's outcome, why, and the figures it read (``{label: {key: value}}``) for logging."""

    outcome: Outcome
    reason: str
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def lookup(metrics: Mapping[str, Any], path: Path) -> float | str:
    """The number at ``path`` of nested ``metrics``, or a string saying why there is none (missing key, or the
    ``"unavailable: ..."`` text evaluate writes)."""
    node: Any = metrics
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return f"no key {'.'.join(path)}"
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        return str(node) if isinstance(node, str) else f"{'.'.join(path)} is {node!r}, not a number"
    return float(node)


def _label(evidence: Mapping[str, Any], default: str) -> str:
    version = evidence.get("version")
    return f"{default} (version {version})" if version is not None else default


def _figures(evidence: Mapping[str, Any], cfg: PromotionConfig) -> dict[str, Any]:
    metrics = evidence.get("metrics", {})
    paths = [cfg.primary, cfg.primary_ci, *(g.path for g in cfg.guards), cfg.recon_l1, cfg.baseline_l1, cfg.identity]
    return {".".join(p): lookup(metrics, p) for p in dict.fromkeys(paths)}


def check_floor(evidence: Mapping[str, Any], cfg: PromotionConfig) -> str | None:
    """Why a version fails the floor, or None when it passes (see the module docstring, step 1)."""
    metrics = evidence.get("metrics", {})
    l1, baseline = lookup(metrics, cfg.recon_l1), lookup(metrics, cfg.baseline_l1)
    if isinstance(l1, str) or isinstance(baseline, str):
        why = l1 if isinstance(l1, str) else baseline
        return f"reconstruction L1 cannot be checked against copying the photo ({why})"
    if not l1 < baseline:
        return f"reconstruction L1 {l1:.4f} does not beat copying the photo ({baseline:.4f})"
    share = lookup(metrics, cfg.identity)
    if isinstance(share, str):
        return f"the identity floor cannot be checked ({share})"
    if share < cfg.identity_floor:
        return f"identity share {share:.3f} is below the floor {cfg.identity_floor:.3f}"
    return None


def decide(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None,
           cfg: PromotionConfig | None = None) -> Decision:
    """Whether ``challenger`` takes ``champion`` (see the module docstring for the steps).

    Args:
        challenger: ``{"version", "fingerprint", "metrics"}`` of the new version.
        champion: the same for the current champion, or None when there is none.
        cfg: the metric keys, margins and floors (None: ``PromotionConfig()``).
    Returns:
        A ``Decision``: ``promote``, ``keep``, ``not_comparable`` or ``below_floor``, with the reason.
    """
    cfg = cfg or PromotionConfig()
    new, old = _label(challenger, "challenger"), _label(champion or {}, "champion")
    figures = {new: _figures(challenger, cfg), **({old: _figures(champion, cfg)} if champion is not None else {})}
    floor = check_floor(challenger, cfg)
    if floor is not None:
        return Decision("below_floor", f"{new} stays candidate: {floor}", figures)
    if champion is None:
        return Decision("promote", f"{new} passes the floor and there is no champion yet", figures)
    if challenger.get("fingerprint") != champion.get("fingerprint"):
        return Decision("not_comparable", f"{new} and {old} were evaluated differently (fingerprints "
                        f"{challenger.get('fingerprint')!r} and {champion.get('fingerprint')!r}): re-evaluate "
                        f"{new} under {old}'s evaluation settings first", figures)
    outcome, reason = _compare(challenger["metrics"], champion["metrics"], cfg, new, old)
    return Decision(outcome, reason, figures)


def _compare(new_m: Mapping[str, Any], old_m: Mapping[str, Any], cfg: PromotionConfig, new: str,
             old: str) -> tuple[Outcome, str]:
    """Steps 3-5 on two like-for-like metric dicts."""
    name = ".".join(cfg.primary)
    values = [lookup(m, p) for m in (new_m, old_m) for p in (cfg.primary, cfg.primary_ci)]
    missing = [v for v in values if isinstance(v, str)]
    if missing:
        return "not_comparable", f"the primary metric {name} or its CI is not a number on both sides ({missing[0]})"
    a, a_ci, b, b_ci = values
    gain, needed = b - a, a_ci + b_ci
    if not gain > needed:
        return "keep", (f"{name} {a:.4f} ± {a_ci:.4f} ({new}) against {b:.4f} ± {b_ci:.4f} ({old}): the "
                        f"improvement {gain:+.4f} is not more than the combined 95 % CI {needed:.4f}")
    notes = []
    for guard in cfg.guards:
        outcome, note = _guard(guard, new_m, old_m)
        if outcome is not None:
            return outcome, f"{name} improves by {gain:.4f} > {needed:.4f}, but {note}"
        notes += [note] if note else []
    skipped = f" ({'; '.join(notes)})" if notes else ""
    return "promote", f"{name} {a:.4f} ± {a_ci:.4f} beats {b:.4f} ± {b_ci:.4f} and no guard fell back{skipped}"


def _guard(guard: Guard, new_m: Mapping[str, Any], old_m: Mapping[str, Any]) -> tuple[Outcome | None, str]:
    """(None, "") when the guard holds, (None, note) when it is unavailable on both sides, else the outcome."""
    name = ".".join(guard.path)
    a, b = lookup(new_m, guard.path), lookup(old_m, guard.path)
    if isinstance(a, str) and isinstance(b, str):
        return None, f"guard {name} not checked: unavailable on both"
    if isinstance(a, str) or isinstance(b, str):
        return "not_comparable", f"guard {name} is available on one side only ({a if isinstance(a, str) else b})"
    loss = (b - a) if guard.higher_is_better else (a - b)
    if loss > guard.margin:
        return "keep", f"guard {name} fell back from {b:.4f} to {a:.4f}, more than its margin {guard.margin:g}"
    return None, ""
