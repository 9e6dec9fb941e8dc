"""Markdown summary and plots of an adherence evaluation (see ``adherence.py``)."""

from __future__ import annotations

from typing import Any

from .report import figure_png, image_grid_png, md_table, new_figure, recipe_markdown


def adherence_markdown(res: dict[str, Any], rec: dict[str, Any], max_failures: int = 15) -> str:
    s = res["summary"]
    rows = [[c, v["accuracy"], v["images"]] for c, v in s["categories"].items()]
    rows.append(["**overall** (mean of categories)", s["overall"], s["images"]])
    rows.append(["image mean", s["image_accuracy"], s["images"]])
    fails = [r for r in res["records"] if not r["correct"]][:max_failures]
    fail_rows = [[r["prompt"], r["seed"], r.get("reason", "")] for r in fails]
    parts = [
        "# Prompt adherence",
        f"{rec.get('num_prompts')} prompts x {len(rec.get('seeds', []))} seeds; generation "
        f"{res['generation_seconds']:.1f} s, total {res['seconds']:.1f} s.",
        md_table(["category", "accuracy", "images"], rows),
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
