"""The report's sections, built from the metrics JSON (``suite.SuiteResult.metrics``): what each table shows and how
to read it. Values are passed through as they are: a number, a (mean, ci) pair, None or an ``unavailable`` reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from thpad.pipelines.evaluate.report import Section, Table

TABLE1 = ("var", "fid_fm", "fid_dfm", "snd")


def pair(row: Mapping[str, Any], name: str) -> Any:
    """A row's value with its CI as a (mean, ci) pair, or the value alone (None, a reason, a plain number)."""
    value, ci = row.get(name), (row.get("ci") or {}).get(name)
    return (value, ci) if isinstance(value, float) and isinstance(ci, float) else value


def table1(rows: Mapping[str, Any], caption: str) -> Table:
    """One Table I: a row per guidance value s, its Var, FID_fm, FID_Δfm and SND (mean ± 95 % CI over seeds)."""
    body = [[key[1:], *(pair(r, m) for m in TABLE1), r.get("seeds")] for key, r in rows.items() if key != "real"]
    return Table(caption, ["s", "Var", "FID_fm", "FID_Δfm", "SND", "seeds"], body)


def measurer_table(block: Mapping[str, Any]) -> Table:
    rows = [[name, r, "yes" if block["available"][name] else "no", block["reason"].get(name, "")]
            for name, r in block["r"].items()]
    return Table(f"Validation against the sample corpus's truth (r centred per clip; gate r >= {block['min_r']})",
                 ["factor", "r", "believed", "why not"], rows)


def prior_table(m: Mapping[str, Any], guidance: float) -> Table:
    """Diffusion against AR on every motion metric."""
    diff_f, ar_f = m["table1_rescaled"].get(f"s{guidance:g}", {}), m["ar"]["f_nl"]
    diff_m, ar_m = m["measured"].get(f"s{guidance:g}", {}), m["ar"]["measured"]
    rows = [[f"f_nl {k}", pair(diff_f, k), pair(ar_f, k)] for k in (*TABLE1, "diversity", "multimodality",
                                                                      "smoothness_ratio")]
    rows += [[f"measured {k}", pair(diff_m, k), pair(ar_m, k)] for k in (*TABLE1, "pose_smoothness_ratio",
                                                                          "head_speed_audio_r", "lip_r")]
    rows += [["identity same_person_share", m["identity"]["same_person_share"],
              m["ar"]["identity"]["same_person_share"]]]
    return Table(f"Diffusion prior (s={guidance:g}, the bundle's sampler) against the AR prior",
                 ["metric", "diffusion", "AR"], rows, "AR is deterministic: one run, no CI, no multimodality.")


def flat_table(caption: str, block: Mapping[str, Any], prefix: str = "") -> Table:
    """Every leaf of a block as a (key, value) row."""
    rows: list[list[Any]] = []

    def walk(node: Mapping[str, Any], path: str) -> None:
        for k, v in node.items():
            if isinstance(v, Mapping):
                walk(v, f"{path}{k}.")
            else:
                rows.append([f"{path}{k}", v])

    walk(block, prefix)
    return Table(caption, ["key", "value"], rows)


def report_sections(m: Mapping[str, Any], figures: Sequence[str], videos: Sequence[str], tiles: Sequence[str]
                    ) -> list[Section]:
    """The report, section by section (see docs/metrics.md for every key)."""
    g = m["identity"]["guidance"]
    run = m["run"]
    return [
        Section("The measurer", "Head pose, expression, blink and mouth opening are read off the frames by dlib's 68 "
                "landmarks, independently of the networks judged. A factor is believed only where it follows the "
                "sample corpus's written truth on real frames at the model's resolution.",
                [measurer_table(m["measurer"])]),
        Section("Table I (generation protocol)", "Var, FID_fm, FID_Δfm and SND of sampled non-lip motion against the "
                "real clips, mean ± 95 % CI over sampling seeds. f_nl space is the model's own feature space (compare "
                "samplers and priors of one model there, never two models); the measured space is model-independent.",
                [table1(m["table1"], "f_nl space, plain classifier-free guidance (the paper's Eq. 10)"),
                 table1(m["table1_rescaled"], "f_nl space, the bundle's guidance rescale"),
                 table1(m["measured"], "measured space (validated pose angles and expression), the bundle's sampler")],
                [f for f in figures if f.startswith("table1")]),
        Section("Diffusion against AR", "", [prior_table(m, g)],
                [f for f in figures if f.startswith("tsne")]),
        Section("Samplers", "Seconds of compute per second of video and FID_fm on the same clips.",
                [flat_table("DDIM-25 and DDIM-50 against DDPM (all T steps)", m.get("ddim_vs_ddpm", {}))]),
        Section("Reconstruction, lips and identity", "Reconstruction: E_v codes of the real frames, lips from the "
                "audio, identity from frame 0, compared frame by frame with the real clip, beside copying the photo. "
                "Identity: dlib's face descriptor of sampled frames against the source photo (a frame without a "
                "detected face counts as a failure).",
                [flat_table("reconstruction", m["reconstruction"]), flat_table("reenactment", m["reenactment"]),
                 flat_table("lip sync", m["lip"]), flat_table("identity", m["identity"]),
                 flat_table("disentanglement (supplement I.5)", m["disentanglement"]),
                 flat_table("editing and smoothness", {"editing": m["editing"], "smoothness": m["smoothness"],
                                                       "audio_tied": m["audio_tied"]})],
                [f for f in figures if f == "timeline.png"]),
        Section("Videos", "Side by side: " + " | ".join(tiles) + ".", [], [], list(videos)),
        Section("Run", "", [flat_table("what was evaluated and how long each step took", run)]),
    ]
