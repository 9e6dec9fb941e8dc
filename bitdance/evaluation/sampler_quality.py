"""Are the fast sampler settings at equal quality? The table of docs/speed.md, from committed reports.

The rule (issue 21, fixed in docs/speed.md before the fast settings were measured): a setting is at *equal
quality* when its FID_cls point value (held-out split) lies inside the reference's FID_cls 95% interval AND
its free-form adherence (overall, `test` split) lies inside the reference's free-form 95% interval. Both
come from the reports of one evaluation run (scripts/eval_default_model.sh):

- FID_cls: ``quality_per_p.json`` metrics ``fid-heldout`` (reference) and ``fid-heldout-<setting>``;
- adherence: ``adherence_freeform_p4.json`` (reference) and ``adherence_freeform_<setting>.json``.

    bitdance docs sampler-quality [--results docs/results]   (writes quality_sampler.json there)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# setting -> (FID metrics key of quality_per_p, adherence report name); the reference first
SETTINGS: dict[str, tuple[str, str]] = {
    "reference": ("fid-heldout", "adherence_freeform_p4"),
    "fast": ("fid-heldout-fast", "adherence_freeform_fast"),
    "fast4": ("fid-heldout-fast4", "adherence_freeform_fast4"),
}
SPLIT = "test"  # the free-form split that reports (dev steered earlier choices)
NOT_MEASURED = "not measured yet"
RULE = (
    "equal quality = FID_cls point inside the reference's FID_cls 95% interval AND free-form adherence "
    f"(overall, {SPLIT} split) inside the reference's free-form 95% interval (issue 21)"
)
COLUMNS = [
    "setting",
    "head solver, steps",
    "FID_cls",
    "95% CI",
    f"free-form adherence ({SPLIT} split)",
    "95% CI",
    "FID_cls inside reference CI",
    "adherence inside reference CI",
    "equal quality",
]


def inside(value: float, interval: tuple[float, float] | list[float]) -> bool:
    """Whether ``value`` lies in the closed interval [low, high]."""
    lo, hi = interval
    return lo <= value <= hi


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _adherence(rep: dict[str, Any]) -> dict[str, Any]:
    """Overall free-form adherence of the reporting split, and the solver / steps the run used."""
    split = rep["metrics"].get("splits", {}).get(SPLIT)
    if split is None:
        raise ValueError(
            f"{rep['name']}.json has no {SPLIT!r} split (run the free-form suite with --split all)"
        )
    rec = rep["recipe"]
    sampling = {**rec.get("effective_defaults", {}), **rec.get("sampling", {})}
    return {
        "adherence": split["overall"],
        "adherence_ci95": list(split["overall_ci95"]),
        "adherence_solver": sampling.get("solver"),
        "adherence_steps": sampling.get("num_sampling_steps"),
        "adherence_model_hash": rec.get("model_hash"),
        "adherence_command": rec.get("command"),
        "adherence_created": rep.get("created"),
    }


def _fid(per_p: dict[str, Any], key: str) -> dict[str, Any] | None:
    m = per_p["metrics"].get(key)
    if m is None or not m.get("fid_cls_ci95"):
        return None
    ci = m["fid_cls_ci95"]
    return {
        "fid_cls": m["fid_cls"],
        "fid_cls_ci95": [ci["low"], ci["high"]],
        "fid_solver": m.get("solver"),
        "fid_steps": m.get("num_sampling_steps"),
        "fid_command": per_p["recipe"].get("commands", {}).get(key),
        "n": m.get("n"),
    }


def sampler_quality_report(results: str | Path) -> dict[str, Any] | None:
    """The equal-quality report of the sampler settings from the reports in ``results``; None without the
    reference's FID_cls and free-form reports."""
    folder = Path(results)
    per_p = _load(folder, "quality_per_p")
    ref_adh = _load(folder, SETTINGS["reference"][1])
    ref_fid = _fid(per_p, SETTINGS["reference"][0]) if per_p else None
    if ref_fid is None or ref_adh is None:
        return None
    measured: dict[str, dict[str, Any]] = {}
    for setting, (fid_key, adh_name) in SETTINGS.items():
        fid = _fid(per_p, fid_key) if per_p else None
        adh = _load(folder, adh_name)
        if fid is None or adh is None:
            continue
        m = {**fid, **_adherence(adh)}
        fid_run, adh_run = (m["fid_solver"], m["fid_steps"]), (m["adherence_solver"], m["adherence_steps"])
        if m["fid_solver"] and m["adherence_solver"] and fid_run != adh_run:
            raise ValueError(
                f"setting {setting!r}: the FID run used {m['fid_solver']} at {m['fid_steps']} steps, the "
                f"adherence run {m['adherence_solver']} at {m['adherence_steps']}: not one setting"
            )
        measured[setting] = m
    ref = measured["reference"]
    hashes = {m["adherence_model_hash"] for m in measured.values()} - {None}
    if len(hashes) > 1:
        raise ValueError(f"the adherence reports are of different weights (model hashes {sorted(hashes)})")
    rows = []
    for setting in SETTINGS:
        m = measured.get(setting)
        if m is None:
            rows.append([setting, NOT_MEASURED, *["-"] * (len(COLUMNS) - 2)])
            continue
        if setting == "reference":
            verdicts = ["(reference)"] * 3
        else:
            m["fid_inside"] = inside(m["fid_cls"], ref["fid_cls_ci95"])
            m["adherence_inside"] = inside(m["adherence"], ref["adherence_ci95"])
            m["equal_quality"] = m["fid_inside"] and m["adherence_inside"]
            m["verdict"] = {  # words the docs quote (docs/speed.md)
                "fid": "inside" if m["fid_inside"] else "outside",
                "adherence": "inside" if m["adherence_inside"] else "outside",
                "equal_quality": "equal quality" if m["equal_quality"] else "not equal quality",
            }
            verdicts = ["yes" if m[k] else "no" for k in ("fid_inside", "adherence_inside", "equal_quality")]
        rows.append(
            [
                setting,
                f"{m['fid_solver'] or m['adherence_solver']}, {m['fid_steps'] or m['adherence_steps']}",
                f"{m['fid_cls']:.2f}",
                _ci(m["fid_cls_ci95"], 2),
                f"{m['adherence']:.3f}",
                _ci(m["adherence_ci95"], 3),
                *verdicts,
            ]
        )
    recipe = {
        "command": "bitdance docs sampler-quality --results docs/results",
        "rule": RULE,
        "sources": {
            s: {"fid": f"quality_per_p.json metrics.{k}", "adherence": f"{a}.json"}
            for s, (k, a) in SETTINGS.items()
        },
        "commands": {
            s: {"fid": m["fid_command"], "adherence": m["adherence_command"]} for s, m in measured.items()
        },
        "model_hash": next(iter(hashes), None),
    }
    created = max(m.get("adherence_created") or "" for m in measured.values())
    return {
        "name": "quality_sampler",
        "recipe": recipe,
        "machine": per_p.get("machine"),
        "created": max(created, per_p.get("created") or "") or None,
        "metrics": measured,
        "tables": {"equal_quality": {"columns": COLUMNS, "rows": rows}},
    }


def _ci(v: list[float], d: int) -> str:
    return f"[{v[0]:.{d}f}, {v[1]:.{d}f}]"


def write_sampler_quality(results: str | Path) -> Path | None:
    """Write ``results/quality_sampler.json``; None (nothing written) without the reference's reports."""
    from ..core.atomic import atomic_write_bytes

    rep = sampler_quality_report(results)
    if rep is None:
        return None
    path = Path(results) / f"{rep['name']}.json"
    atomic_write_bytes(path, (json.dumps(rep, indent=1) + "\n").encode())
    return path
