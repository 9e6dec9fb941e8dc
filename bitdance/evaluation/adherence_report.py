"""Markdown summary and plots of an adherence evaluation (see ``adherence.py``)."""

from __future__ import annotations

import json
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


def comparison_tables(runs: dict[str, dict[str, Any]], part: str) -> dict[str, Any]:
    """Per comparison: one row per setting (overall and per category, "acc [lo, hi]"), and whether its
    overall interval overlaps the defaults' one. ``part``: 'all' or a split name."""
    from .intervals import compare

    def pick(setting: str) -> dict[str, Any] | None:
        s = runs.get(setting)
        if s is None:
            return None
        return s if part == "all" else s.get("splits", {}).get(part)

    tables: dict[str, Any] = {}
    for table_id, base, settings in COMPARISONS:
        b = pick(base)
        present = [st for st in settings if pick(st) is not None]
        if b is None or len(present) < 2:
            continue
        cats = sorted(b["categories"])
        cols = ["setting", "overall (fraction)", "95% CI", *cats, "overlaps defaults", "images"]
        rows = []
        for st in present:
            s = pick(st)
            cmp = compare(b, s)
            cells = [
                f"{s['categories'][c]['accuracy']:.3f} {_ci(s['categories'][c]['ci95'])}"
                if c in s["categories"]
                else "-"
                for c in cats
            ]
            overlap = "(defaults)" if st == base else ("yes" if cmp["intervals_overlap"] else "no")
            rows.append(
                [
                    SETTING_LABELS.get(st, st),
                    f"{s['overall']:.3f}",
                    _ci(s["overall_ci95"]),
                    *cells,
                    overlap,
                    s["images"],
                ]
            )
        tables[table_id] = {"columns": cols, "rows": rows}
    return tables


def write_results(runs_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """docs/results/adherence_<suite>_<setting>.json per run found in ``runs_dir`` (folders named
    <suite>-<setting>, as scripts/eval_adherence_matrix.sh writes them), plus adherence_<suite>_matrix.json
    with the comparison tables."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    written = []
    for rep in sorted(runs_dir.glob("*-*/report.json")):
        suite, setting = rep.parent.name.rsplit("-", 1)
        report = json.loads(rep.read_text())
        name = f"adherence_{suite}_{setting}"
        rec, metrics, tables = run_result(report, name)
        written.append(write_result(out_dir / f"{name}.json", name, rec, metrics, tables))
        found.setdefault(suite, {})[setting] = report["results"]["summary"]
        found[suite][setting]["_recipe"] = report["recipe"]
    for suite, runs in sorted(found.items()):
        parts = ["all", *sorted({sp for s in runs.values() for sp in s.get("splits", {})})]
        tables: dict[str, Any] = {}
        for part in parts:
            for tid, t in comparison_tables(runs, part).items():
                tables[f"{tid}_{part}"] = t
        base = runs.get("p4") or next(iter(runs.values()))
        rec = {
            "command": f"scripts/eval_adherence_matrix.sh; bitdance adherence-report "
            f"results {runs_dir} {out_dir}",
            "runs": {st: s["_recipe"]["command"] for st, s in sorted(runs.items())},
            "model": base["_recipe"].get("model"),
            "model_hash": base["_recipe"].get("model_hash"),
            "seeds": base["_recipe"].get("seeds"),
            "comparison": "each setting against the defaults (P=4, 20 steps, fp32); 'overlaps defaults' = "
            "whether the overall 95% bootstrap intervals overlap",
            "machine": base["_recipe"].get("machine"),
            "utc": max(s["_recipe"].get("utc", "") for s in runs.values()),
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
    args = p.parse_args(argv)
    for path in write_results(args.runs_dir, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
