"""Markdown summary and plots of an adherence evaluation (see ``adherence.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .report import figure_png, image_grid_png, md_table, new_figure, recipe_markdown


def adherence_markdown(res: dict[str, Any], rec: dict[str, Any], max_failures: int = 15) -> str:
    s = res["summary"]
    fails = [r for r in res["records"] if not r["correct"]][:max_failures]
    fail_rows = [[r["prompt"], r["seed"], r.get("reason", "")] for r in fails]
    parts = [
        "# Prompt adherence",
        f"{rec.get('num_prompts')} prompts x {len(rec.get('seeds', []))} seeds; generation "
        f"{res['generation_seconds']:.1f} s, total {res['seconds']:.1f} s.",
        *_summary_tables(s),
        "Scorers: shapes by analytic detectors (colour, shape, size, position, count, relation); "
        "fashion by the "
        "project classifier (class) + foreground colour; emoji by the project emoji classifier. "
        "Each scorer's "
        "accuracy on ground-truth images bounds what a perfect generator can score (docs/benchmarks.md).",
    ]
    if fail_rows:
        parts += [f"First {len(fail_rows)} failures:", md_table(["prompt", "seed", "why"], fail_rows)]
    parts += [
        "Plots: `adherence.png` (accuracy per category), `samples.png` (titles start with OK or X).",
        recipe_markdown(rec),
    ]
    return "\n\n".join(parts)


def _ci(v: list[float]) -> str:
    return f"[{v[0]:.3f}, {v[1]:.3f}]"


def summary_rows(s: dict[str, Any]) -> list[list[Any]]:
    """[category, accuracy (fraction), 95 % CI, prompts, images] rows, overall and image mean last."""
    rows = [
        [c, f"{v['accuracy']:.3f}", _ci(v["ci95"]), v["prompts"], v["images"]]
        for c, v in s["categories"].items()
    ]
    rows.append(
        [
            "overall (mean of categories)",
            f"{s['overall']:.3f}",
            _ci(s["overall_ci95"]),
            s["prompts"],
            s["images"],
        ]
    )
    rows.append(
        ["image mean", f"{s['image_accuracy']:.3f}", _ci(s["image_accuracy_ci95"]), s["prompts"], s["images"]]
    )
    return rows


SUMMARY_COLUMNS = ["category", "accuracy (fraction)", "95% CI", "prompts", "images"]


def _summary_tables(s: dict[str, Any]) -> list[str]:
    b = s["bootstrap"]
    note = (
        f"95% CI: bootstrap over {b['unit']} ({b['resamples']} resamples, seed {b['seed']}, {b['interval']})."
    )
    parts = ["All prompts:", md_table(SUMMARY_COLUMNS, summary_rows(s))]
    for sp, v in s.get("splits", {}).items():
        parts += [f"Split `{sp}`:", md_table(SUMMARY_COLUMNS, summary_rows(v))]
    return [*parts, note]


def adherence_plots(res: dict[str, Any]) -> dict[str, bytes]:
    cats = res["summary"]["categories"]
    fig, ax = new_figure()
    ax.bar(list(cats), [v["accuracy"] for v in cats.values()], color="tab:purple")
    ax.axhline(res["summary"]["overall"], color="k", ls="--", lw=0.8, label="overall")
    ax.set(ylim=(0, 1), ylabel="accuracy", title="Prompt adherence per category")
    ax.tick_params(axis="x", labelrotation=20, labelsize=7)
    ax.legend(fontsize=7)
    samples = res["samples"]
    titles = [("OK " if ok else "X ") + p[:16] for _, ok, p in samples]
    return {
        "adherence.png": figure_png(fig),
        "samples.png": image_grid_png([im for im, _, _ in samples], titles),
    }


# --- committed result files (docs/results/<name>.json, the shared format) -----------------------------------
SETTING_LABELS: dict[str, str] = {
    "p4": "P=4, 20 steps (defaults)",
    "p1": "P=1",
    "p16": "P=16",
    "s10": "10 head steps",
    "s50": "50 head steps",
    "int8": "int8 pipeline (bitdance quantize defaults)",
}
# (table id, baseline setting, compared settings): every comparison is against the shipped defaults
COMPARISONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("by_parallel", "p4", ("p1", "p4", "p16")),
    ("by_steps", "p4", ("s10", "p4", "s50")),
    ("int8_vs_fp32", "p4", ("p4", "int8")),
)


def write_result(
    path: str | Path, name: str, rec: dict[str, Any], metrics: dict[str, Any], tables: dict[str, Any]
) -> Path:
    """One committed result report in the shared format (no images)."""
    from ..checkpoint import atomic_write_bytes
    from .report import _clean

    rec = dict(rec)
    machine = rec.pop("machine", {})
    created = rec.pop("utc", None)
    doc = {
        "name": name,
        "recipe": rec,
        "machine": machine,
        "created": created,
        "metrics": metrics,
        "tables": tables,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(_clean(doc), indent=1) + "\n").encode())
    return path


def _lean(s: dict[str, Any]) -> dict[str, Any]:
    """A summary without the per-prompt list (kept in the run's own report.json)."""
    out = {k: v for k, v in s.items() if k not in ("prompt_accuracy", "splits")}
    if "splits" in s:
        out["splits"] = {sp: _lean(v) for sp, v in s["splits"].items()}
    return out


def run_result(report: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(recipe, metrics, tables) of one adherence run's report.json."""
    s = report["results"]["summary"]
    rec = dict(report["recipe"])
    rec["bootstrap"] = s["bootstrap"]
    if "prompts" in rec:  # the suite file relative to the repository, not this machine's checkout
        p = Path(rec["prompts"])
        root = Path(__file__).resolve().parents[2]
        rec["prompts"] = str(p.relative_to(root)) if p.is_absolute() and p.is_relative_to(root) else str(p)
    tables = {"all": {"columns": SUMMARY_COLUMNS, "rows": summary_rows(s)}}
    for sp, v in s.get("splits", {}).items():
        tables[sp] = {"columns": SUMMARY_COLUMNS, "rows": summary_rows(v)}
    return rec, _lean(s), tables


NOT_MEASURED = "not measured yet"
LONG_SUFFIX = "_by_category"
LONG_COLUMNS = [
    "category",
    "setting",
    "accuracy (fraction)",
    "95% CI",
    "prompts",
    "images",
    "CI overlaps defaults",
]


def comparison_tables(runs: dict[str, dict[str, Any]], part: str) -> dict[str, Any]:
    """Per comparison, two tables of the settings against the defaults (P=4, 20 steps, fp32):

    - ``<id>``: one row per setting, overall and per category ("acc [lo, hi]"), and whether its overall
      interval overlaps the defaults' one;
    - ``<id>_by_category``: one row per (category, setting) with n (prompts, images), the 95 % interval and
      whether it overlaps the defaults' interval of that category; the overall rows last.

    A setting without a run gets one "not measured yet" row (first in the long table). ``part``: 'all' or
    a split name."""
    from .intervals import intervals_overlap

    def pick(setting: str) -> dict[str, Any] | None:
        s = runs.get(setting)
        if s is None:
            return None
        return s if part == "all" else s.get("splits", {}).get(part)

    tables: dict[str, Any] = {}
    for table_id, base, settings in COMPARISONS:
        b = pick(base)
        if b is None:
            continue
        cats = sorted(b["categories"])
        cols = ["setting", "overall (fraction)", "95% CI", *cats, "overlaps defaults", "images"]
        wide, long_rows = [], []
        for st in settings:
            s, label = pick(st), SETTING_LABELS.get(st, st)
            if s is None:
                wide.append([label, NOT_MEASURED, "-", *["-"] * len(cats), "-", "-"])
                continue
            cells = [
                f"{s['categories'][c]['accuracy']:.3f} {_ci(s['categories'][c]['ci95'])}"
                if c in s["categories"]
                else "-"
                for c in cats
            ]
            over = intervals_overlap(b["overall_ci95"], s["overall_ci95"])
            overlap = "(defaults)" if st == base else ("yes" if over else "no")
            wide.append([label, f"{s['overall']:.3f}", _ci(s["overall_ci95"]), *cells, overlap, s["images"]])
        missing = [st for st in settings if pick(st) is None]
        for st in missing:  # one row per setting without a run, first
            long_rows.append(["all", SETTING_LABELS.get(st, st), NOT_MEASURED, "-", "-", "-", "-"])
        for cat in [*cats, None]:
            for st in settings:
                s, label = pick(st), SETTING_LABELS.get(st, st)
                name = cat or "overall (mean of categories)"
                if s is None:
                    continue
                if cat is not None and cat not in s["categories"]:
                    long_rows.append([name, label, "-", "-", "-", "-", "-"])
                    continue
                overall = {**s, "accuracy": s["overall"], "ci95": s["overall_ci95"]}
                v = s["categories"][cat] if cat else overall
                ref = b["categories"].get(cat) if cat else {"ci95": b["overall_ci95"]}
                over = "-" if ref is None else ("yes" if intervals_overlap(ref["ci95"], v["ci95"]) else "no")
                long_rows.append(
                    [
                        name,
                        label,
                        f"{v['accuracy']:.3f}",
                        _ci(v["ci95"]),
                        v["prompts"],
                        v["images"],
                        "(defaults)" if st == base else over,
                    ]
                )
        tables[table_id] = {"columns": cols, "rows": wide}
        tables[f"{table_id}{LONG_SUFFIX}"] = {"columns": LONG_COLUMNS, "rows": long_rows}
    return tables


def _is_limited(recipe: dict[str, Any]) -> bool:
    return recipe.get("limit") is not None


def write_results(runs_dir: str | Path, out_dir: str | Path, allow_limited: bool = False) -> list[Path]:
    """docs/results/adherence_<suite>_<setting>.json per run found in ``runs_dir`` (folders named
    <suite>-<setting>, as scripts/eval_default_model.sh writes them), then the comparison reports
    adherence_<suite>_matrix.json from every per-setting report in ``out_dir`` (``write_matrices``).
    A smoke run (``--limit``) is refused unless ``allow_limited``."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no adherence run folder {str(runs_dir)!r}")
    written = []
    for rep in sorted(runs_dir.glob("*-*/report.json")):
        suite, setting = rep.parent.name.rsplit("-", 1)
        report = json.loads(rep.read_text())
        if _is_limited(report["recipe"]) and not allow_limited:
            raise ValueError(
                f"{rep} is a smoke run (--limit {report['recipe']['limit']}): not a reportable result; "
                "rerun without --limit, or pass --allow-limited for a preview"
            )
        name = f"adherence_{suite}_{setting}"
        rec, metrics, tables = run_result(report, name)
        written.append(write_result(out_dir / f"{name}.json", name, rec, metrics, tables))
    return written + write_matrices(out_dir)


def write_matrices(out_dir: str | Path) -> list[Path]:
    """adherence_<suite>_matrix.json from the committed per-setting reports adherence_<suite>_<setting>.json
    of ``out_dir``. Only settings measured on the same weights as the defaults run (``p4``, same model
    hash) are compared; the int8 run is of quantized weights (its own hash) and is taken as it is."""
    out_dir = Path(out_dir)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(out_dir.glob("adherence_*_*.json")):
        suite, setting = path.stem[len("adherence_") :].rsplit("_", 1)
        if setting == "matrix" or setting not in SETTING_LABELS:
            continue
        doc = json.loads(path.read_text())
        found.setdefault(suite, {})[setting] = doc
    written = []
    for suite, docs in sorted(found.items()):
        base = docs.get("p4")
        if base is None:
            continue
        h = base["recipe"].get("model_hash")
        kept = {
            st: d for st, d in docs.items() if st == "int8" or h is None or d["recipe"].get("model_hash") == h
        }
        runs = {st: d["metrics"] for st, d in kept.items()}
        parts = ["all", *sorted({sp for s in runs.values() for sp in s.get("splits", {})})]
        tables: dict[str, Any] = {}
        for part in parts:
            for tid, t in comparison_tables(runs, part).items():
                long = tid.endswith(LONG_SUFFIX)
                tables[f"{tid.removesuffix(LONG_SUFFIX)}_{part}{LONG_SUFFIX if long else ''}"] = t
        rec = {
            "command": "scripts/eval_default_model.sh; bitdance adherence-report results runs/eval/adh "
            "docs/results",
            "runs": {st: d["recipe"].get("command") for st, d in sorted(kept.items())},
            "model": base["recipe"].get("model"),
            "model_hash": h,
            "int8_model_hash": kept["int8"]["recipe"].get("model_hash") if "int8" in kept else None,
            "ignored_other_weights": sorted(set(docs) - set(kept)),
            "seeds": base["recipe"].get("seeds"),
            "comparison": "each setting against the defaults (P=4, 20 steps, fp32); 'overlaps defaults' = "
            "whether the two 95% bootstrap intervals (overall, or of the category) overlap",
            "machine": base.get("machine"),
            "utc": max(d.get("created") or "" for d in kept.values()) or None,
        }
        metrics = {
            st: {
                "overall": s["overall"],
                "overall_ci95": s["overall_ci95"],
                **{
                    sp: {"overall": v["overall"], "overall_ci95": v["overall_ci95"]}
                    for sp, v in s.get("splits", {}).items()
                },
            }
            for st, s in sorted(runs.items())
        }
        name = f"adherence_{suite}_matrix"
        written.append(write_result(out_dir / f"{name}.json", name, rec, metrics, tables))
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="bitdance adherence-report")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("results", help="adherence run folders -> docs/results/adherence_*.json")
    r.add_argument("runs_dir", help="folder of <suite>-<setting>/report.json (default runs/eval/adh)")
    r.add_argument("out_dir", help="where the result files go (docs/results)")
    r.add_argument("--allow-limited", action="store_true", help="accept smoke runs (--limit): previews only")
    m = sub.add_parser("matrix", help="rebuild adherence_<suite>_matrix.json from the committed reports")
    m.add_argument("out_dir", help="folder of adherence_<suite>_<setting>.json (docs/results)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "results":
            paths = write_results(args.runs_dir, args.out_dir, args.allow_limited)
        else:
            paths = write_matrices(args.out_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
