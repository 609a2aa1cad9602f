"""Per-call generation settings: what ``thpad generate`` and ``TalkingHeadModel.generate`` accept, checked against
the prior they apply to (TH-PAD supplement §I.3-I.5, §II.2-II.3; docs/paper-notes.md §1.6).

An option that does not apply to the chosen prior is refused, never ignored:

- the AR prior is deterministic: no seed, no samples > 1, no guidance, no sampler or steps, no keyframes;
- DDPM always runs all T steps: ``steps`` other than T is refused (use DDIM for fewer);
- reenactment (``nonlip_from``) takes the non-lip codes from a video, so no prior option applies to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from thpad.models.diffusion.sampling import SamplerConfig

PRIORS = ("diffusion", "ar")


class SettingsError(ValueError):
    """A generation option that is out of range or does not apply to the chosen prior."""


@dataclass(frozen=True)
class Settings:
    """One generation call. ``None`` means the bundle's validated default (sampling) or the documented default.

    Attributes:
        prior: "diffusion" (sampled, the paper's) or "ar" (the deterministic baseline).
        sampler, steps, guidance, guidance_rescale, eta: the diffusion sampler (defaults: the bundle's).
        seed: the seed of sample 0 (sample k uses seed + k); None = 0 for the diffusion prior.
        samples: videos from consecutive seeds.
        keyframes: frame index -> photo (path, bytes or array) whose E_v code is pinned at that frame.
        anchor: pin frame 0 to the source photo's own E_v code, so the video starts from its pose and expression.
        nonlip_from: a driving video whose per-frame E_v codes replace the prior (reenactment).
        lip, nonlip: "zero" renders with that code set to zeros (the disentanglement views of supplement Fig. II).
        motion_scale: the sampled codes' deviation from the reference (the anchor, else the first window's mean)
            is scaled by this: 0 holds the head still with the lips moving, 1 keeps the sample.
        face: which detected face of the photo (0 = the largest); None = the largest, or refused under the
            bundle's ``reject`` multi-face policy.
    """

    prior: Literal["diffusion", "ar"] = "diffusion"
    sampler: Literal["ddpm", "ddim"] | None = None
    steps: int | None = None
    guidance: float | None = None
    guidance_rescale: float | None = None
    eta: float | None = None
    seed: int | None = None
    samples: int = 1
    keyframes: Mapping[int, Any] = field(default_factory=dict)
    anchor: bool = True
    nonlip_from: Any = None
    lip: Literal["audio", "zero"] = "audio"
    nonlip: Literal["sampled", "zero"] = "sampled"
    motion_scale: float = 1.0
    face: int | None = None


def check_settings(s: Settings, num_train_steps: int) -> None:
    """Refuse out-of-range values and options that do not apply (see the module docstring).

    Raises:
        SettingsError: naming the option and why.
    """
    if s.prior not in PRIORS:
        raise SettingsError(f"prior must be one of {', '.join(PRIORS)}, got {s.prior!r}")
    if s.samples < 1:
        raise SettingsError(f"samples must be >= 1, got {s.samples}")
    if not 0.0 <= s.motion_scale <= 4.0:
        raise SettingsError(f"motion scale must be in [0, 4], got {s.motion_scale}")
    if s.lip not in ("audio", "zero") or s.nonlip not in ("sampled", "zero"):
        raise SettingsError(f"lip must be 'audio' or 'zero' and nonlip 'sampled' or 'zero', got {s.lip!r}, "
                            f"{s.nonlip!r}")
    if s.nonlip_from is not None:
        _refuse(s, "nonlip_from (reenactment takes the non-lip codes from the video)",
                ("sampler", "steps", "guidance", "guidance_rescale", "eta", "seed", "keyframes"), samples=True)
        return
    if s.prior == "ar":
        _refuse(s, "the AR prior (it is deterministic)",
                ("sampler", "steps", "guidance", "guidance_rescale", "eta", "seed", "keyframes"), samples=True)
        return
    if s.sampler == "ddpm" and s.steps not in (None, num_train_steps):
        raise SettingsError(f"DDPM always runs all {num_train_steps} steps; use sampler ddim for {s.steps} steps")
    if s.steps is not None and not 1 <= s.steps <= num_train_steps:
        raise SettingsError(f"steps must be in [1, {num_train_steps}], got {s.steps}")
    if s.guidance is not None and not 0.0 <= s.guidance <= 20.0:
        raise SettingsError(f"guidance must be in [0, 20], got {s.guidance}")
    if s.guidance_rescale is not None and not 0.0 <= s.guidance_rescale <= 1.0:
        raise SettingsError(f"guidance rescale must be in [0, 1], got {s.guidance_rescale}")
    if s.eta is not None and not 0.0 <= s.eta <= 1.0:
        raise SettingsError(f"eta must be in [0, 1], got {s.eta}")
    if s.seed is not None and s.seed < 0:
        raise SettingsError(f"seed must be >= 0, got {s.seed}")


def _refuse(s: Settings, why: str, names: tuple[str, ...], samples: bool) -> None:
    given = [n for n in names if getattr(s, n) not in (None, {}, ())]
    if samples and s.samples != 1:
        given.append("samples")
    if given:
        raise SettingsError(f"{', '.join(given)} do(es) not apply to {why}")


def sampler_config(s: Settings, defaults: Mapping[str, Any]) -> SamplerConfig:
    """The diffusion sampler for ``s``, unset values from the bundle's sampling defaults. DDPM takes all T steps."""
    sampler = s.sampler or defaults["sampler"]
    steps = s.steps if s.steps is not None else (None if sampler == "ddpm" else defaults["num_steps"])
    return SamplerConfig(guidance=_pick(s.guidance, defaults["guidance"]), sampler=sampler, num_steps=steps,
                         eta=_pick(s.eta, defaults["eta"]),
                         guidance_rescale=_pick(s.guidance_rescale, defaults["guidance_rescale"]))


def _pick(value: float | None, default: float) -> float:
    return float(default if value is None else value)


def resolved(s: Settings, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as they run, for the sidecar JSON: sampler values filled in, inputs named, not embedded."""
    out = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("keyframes", "nonlip_from")}
    out["keyframes"] = sorted(int(k) for k in s.keyframes)
    if s.prior == "diffusion" and s.nonlip_from is None:
        out.update(dataclasses.asdict(sampler_config(s, defaults)))
        out["seed"] = s.seed or 0
        out.pop("window", None)
    return out
