"""Markdown summary and plots of an adherence evaluation (see ``adherence.py``)."""

from __future__ import annotations

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
