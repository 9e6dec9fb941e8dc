"""Edit benchmark (`bitdance eval edit`): edits whose correct result depends on the kept part of the image.

Tasks (held out: shapes scenes from the stream ``bitdance/edit-bench/...``, which no training set, suite or
selection uses; garments = tinted Fashion-MNIST *test* items from index 9000 on, tint seed 11):

- relation_to_kept: a two-object relation scene; the half holding the subject is regenerated, the other
  object is kept; the prompt is the scene's caption ("a red circle left of a blue square").
- complete_half: the same kind of scene with the other half regenerated (outpainting a half).
- count_colour: a counting scene ("three yellow squares"); the token cells of one object are regenerated,
  so the edit must add exactly the missing object(s) in the kept objects' colour and shape.
- garment_half: the bottom half of a tinted garment is regenerated under its caption ("a red dress").

Every edit is scored on the whole image with the adherence scorers (`adherence.py`). Also measured:
kept-region fidelity (kept tokens bit-identical), sensitivity (the same edit of a second source image of the
same category: fraction of regenerated token positions whose bits differ, split by where the position lies in
generation order relative to the kept tokens: before all of them, inside their span, after all of them), and
time per edit relative to a plain generation of the same prompt, seeds and settings (one run).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from ..data.registry import build_dataset
from ..data.shapes import caption_scene, render_scene, sample_scene
from ..generator.patches import order_for
from ..pipeline.editing import token_keep
from .adherence import AdherenceScorer
from .edit_sensitivity import black_cells, detail_tables, edit_records, summarize
from .suites import expect_from_scene

STREAM = "bitdance/edit-bench"
GARMENT_FIRST, GARMENT_TINT_SEED = 9000, 11
CATEGORIES = ("relation_to_kept", "complete_half", "count_colour", "garment_half")
METHODS = ("substitute", "joint", "kept_first")


def _half_mask(size: int, axis: str, low: bool) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    h = size // 2
    sl = slice(0, h) if low else slice(h, size)
    if axis == "x":
        m[:, sl] = True
    else:
        m[sl, :] = True
    return m


def _relation_task(i: int, size: int, subject: bool) -> dict[str, Any]:
    rng = random.Random(f"{STREAM}/relation/{int(subject)}/{i}")
    scene = sample_scene(rng, ("relation",))
    obj = scene["objects"][0 if subject else 1]
    axis = "x" if scene["relation"] in ("left of", "right of") else "y"
    c = obj["centre"][0 if axis == "x" else 1]
    return {
        "category": "relation_to_kept" if subject else "complete_half",
        "image": render_scene(scene, size),
        "mask": _half_mask(size, axis, c < 0.5),
        "prompt": caption_scene(scene),
        "expect": expect_from_scene(scene),
    }


def _count_task(i: int, size: int) -> dict[str, Any]:
    rng = random.Random(f"{STREAM}/count/{i}")
    while True:
        scene = sample_scene(rng, ("count",))
        if scene["count"] >= 2:
            break
    x0, y0, x1, y1 = scene["objects"][0]["bbox"]
    m = np.zeros((size, size), dtype=bool)
    m[int(y0 * size) : int(np.ceil(y1 * size)), int(x0 * size) : int(np.ceil(x1 * size))] = True
    return {
        "category": "count_colour",
        "image": render_scene(scene, size),
        "mask": m,
        "prompt": caption_scene(scene),
        "expect": expect_from_scene(scene),
    }


def build_tasks(n_per_category: int, size: int) -> list[dict[str, Any]]:
    """The held-out edit tasks: n per category, each with image (PIL), mask (H, W) bool, prompt, expect."""
    tasks = [_relation_task(i, size, True) for i in range(n_per_category)]
    tasks += [_relation_task(i, size, False) for i in range(n_per_category)]
    tasks += [_count_task(i, size) for i in range(n_per_category)]
    ds = build_dataset("fashion_mnist", "test", size, tint=True, seed=GARMENT_TINT_SEED)
    for i in range(n_per_category):
        item = ds[GARMENT_FIRST + i]
        meta = item["meta"]
        expect = {"domain": "fashion", "class": meta["class_name"]}
        if meta["colour"] is not None:
            expect["colour"] = meta["colour"]
        img = ((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        tasks.append(
            {
                "category": "garment_half",
                "image": img,
                "mask": _half_mask(size, "y", False),
                "prompt": item["caption"],
                "expect": expect,
            }
        )
    return tasks


def bootstrap_ci(values: list[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if not values:
        return float("nan"), float("nan")
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def position_classes(keep_hw: torch.Tensor, parallel_num: int) -> dict[int, str]:
    """Raster index of each regenerated token -> 'before' / 'inside' / 'after' the kept tokens' span in
    the default generation order at P = parallel_num."""
    grid = tuple(keep_hw.shape)
    order = order_for(grid, parallel_num)  # type: ignore[arg-type]
    keep_seq = keep_hw.flatten()[order]
    kept_at = torch.nonzero(keep_seq).flatten()
    lo, hi = int(kept_at.min()), int(kept_at.max())
    out = {}
    for k in torch.nonzero(~keep_seq).flatten().tolist():
        out[int(order[k])] = "before" if k < lo else ("after" if k > hi else "inside")
    return out


def _edit(pipe: Any, task: dict[str, Any], source: Any, method: str, seeds: list[int], kw: dict[str, Any]):
    return pipe.edit(
        source,
        mask=task["mask"],
        prompt=task["prompt"],
        seed=list(seeds),
        num_images_per_prompt=len(seeds),
        method=method,
        **kw,
    )


def evaluate_edits(
    pipe: Any,
    n_per_category: int,
    seeds: list[int],
    methods: tuple[str, ...] = METHODS,
    sampling: dict[str, Any] | None = None,
    scorer: AdherenceScorer | None = None,
    detail: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; returns metrics per method and the task list (prompts, categories). ``detail``:
    also the sensitivity detail (`edit_sensitivity.py`) under "sensitivity_detail"."""
    kw = dict(sampling or {})
    size = pipe.generator.config.grid_size[0] * pipe.tokenizer.downsample
    p = kw.get("parallel_num") or pipe.defaults["parallel_num"]
    tasks = build_tasks(n_per_category, size)
    scorer = scorer or AdherenceScorer()
    f = pipe.tokenizer.downsample
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        by_cat[t["category"]].append(i)
    partner = {}
    for idx in by_cat.values():
        for j, i in enumerate(idx):
            partner[i] = idx[(j + 1) % len(idx)]
    correct: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in methods}
    fidelity: dict[str, list[float]] = {m: [] for m in methods}
    sens: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in methods}
    sens_cat: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in methods}
    times: dict[str, float] = {m: 0.0 for m in ("plain", *methods)}
    n_seeds = len(seeds)
    records: list[dict[str, Any]] = []
    if detail:
        bg_bits = pipe.tokenizer.encode(torch.full((1, 3, size, size), -1.0))[0]  # a plain black image
    for i, t in enumerate(tasks):
        keep = token_keep(torch.from_numpy(t["mask"]), f)
        classes = position_classes(keep, p)
        start = time.perf_counter()
        pipe(t["prompt"], seed=list(seeds), num_images_per_prompt=n_seeds, output_type="bits", **kw)
        times["plain"] += time.perf_counter() - start
        src_bits = pipe.tokenizer.encode(_tensor(t["image"])).float()
        other_bits = pipe.tokenizer.encode(_tensor(tasks[partner[i]]["image"])).float()
        for m in methods:
            start = time.perf_counter()
            out = _edit(pipe, t, src_bits[0], m, seeds, kw)
            times[m] += time.perf_counter() - start
            scores = scorer.score(out.images, [t["expect"]] * n_seeds)
            correct[m][t["category"]] += [float(ok) for ok, _ in scores]
            fidelity[m] += [float(torch.equal(b[:, keep], src_bits[0][:, keep])) for b in out.bits]
            other = _edit(pipe, t, other_bits[0], m, seeds, {**kw, "output_type": "bits"})
            for r, cls in classes.items():
                y, x = divmod(r, keep.shape[1])
                for s in range(n_seeds):
                    differs = float(not torch.equal(out.bits[s][:, y, x], other.bits[s][:, y, x]))
                    sens[m][cls].append(differs)
                    sens_cat[m][t["category"]].append(differs)
            if detail:
                src_black = tuple(black_cells(np.asarray(x["image"]), f) for x in (t, tasks[partner[i]]))
                records += edit_records(
                    pipe.tokenizer, m, t["category"], classes, (out.bits, other.bits), bg_bits, src_black
                )
    metrics: dict[str, Any] = {}
    for m in methods:
        cats = {}
        for c in CATEGORIES:
            v = correct[m][c]
            lo, hi = bootstrap_ci(v)
            cats[c] = {"accuracy": float(np.mean(v)), "ci95": [lo, hi], "n": len(v)}
        allv = [x for c in CATEGORIES for x in correct[m][c]]
        lo, hi = bootstrap_ci(allv)
        sall = [x for v in sens[m].values() for x in v]
        slo, shi = bootstrap_ci(sall)
        metrics[m] = {
            "context_dependent": {"accuracy": float(np.mean(allv)), "ci95": [lo, hi], "n": len(allv)},
            "categories": cats,
            "kept_tokens_exact": {"fraction": float(np.mean(fidelity[m])), "n": len(fidelity[m])},
            "sensitivity": {
                "all": {"fraction": float(np.mean(sall)), "ci95": [slo, shi], "n": len(sall)},
                **{
                    c: {"fraction": float(np.mean(v)), "ci95": list(bootstrap_ci(v)), "n": len(v)}
                    for c, v in sorted(sens[m].items())
                },
                "by_category": {c: float(np.mean(v)) for c, v in sorted(sens_cat[m].items())},
            },
            "time_vs_plain": times[m] / times["plain"],
        }
    extra = {"sensitivity_detail": summarize(records)} if detail else {}
    return {
        **extra,
        "metrics": metrics,
        "seconds": times,
        "tasks": [{"category": t["category"], "prompt": t["prompt"]} for t in tasks],
        "parallel_num": p,
        "size": size,
    }


def _tensor(image: Any) -> torch.Tensor:
    from ..pipeline.editing import load_image  # noqa: PLC0415

    return load_image(image)


def edit_tables(res: dict[str, Any]) -> dict[str, Any]:
    """Shared-format tables: adherence per category and method, and fidelity / sensitivity / time."""

    def acc(d: dict[str, Any]) -> list[Any]:
        return [f"{d['accuracy']:.3f}", f"[{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]", d["n"]]

    rows = []
    for m, v in res["metrics"].items():
        rows.append([m, "all context-dependent", *acc(v["context_dependent"])])
        rows += [[m, c, *acc(d)] for c, d in v["categories"].items()]
    other = []
    for m, v in res["metrics"].items():
        s = v["sensitivity"]
        other.append(
            [
                m,
                f"{v['kept_tokens_exact']['fraction']:.3f}",
                *(
                    f"{s[c]['fraction']:.3f} [{s[c]['ci95'][0]:.3f}, {s[c]['ci95'][1]:.3f}]"
                    if c in s
                    else "-"
                    for c in ("before", "inside", "after", "all")
                ),
                f"{v['time_vs_plain']:.2f}",
            ]
        )
    return {
        "adherence": {"columns": ["method", "category", "accuracy (fraction)", "95% CI", "n"], "rows": rows},
        "fidelity_sensitivity_time": {
            "columns": [
                "method",
                "kept tokens exact (fraction)",
                "sensitivity before (fraction, 95% CI)",
                "inside",
                "after",
                "all",
                "time per edit / plain generation",
            ],
            "rows": other,
        },
    }


def md_from_tables(tables: dict[str, Any]) -> str:
    out = []
    for t in tables.values():
        out.append("| " + " | ".join(t["columns"]) + " |")
        out.append("|" + "---|" * len(t["columns"]))
        out += ["| " + " | ".join(str(c) for c in r) + " |" for r in t["rows"]]
        out.append("")
    return "\n".join(out)


def run_edit_bench(args: Any, argv: list[str], pipe: Any, sampling: dict[str, Any], model_fields: Any) -> int:
    """`bitdance eval edit`: run, print a summary and write <out>/report.json (shared results format)."""
    import datetime as _dt  # noqa: PLC0415

    from ..sampling.inpaint import check_method  # noqa: PLC0415
    from .report import machine_info, recipe, write_report  # noqa: PLC0415

    methods = tuple(check_method(m.strip()) for m in args.methods.split(",") if m.strip())
    if not methods:
        raise ValueError("--methods must name at least one of substitute, joint, kept_first")
    detail = bool(getattr(args, "sensitivity_detail", False))
    res = evaluate_edits(pipe, args.n, list(args.seeds), methods, sampling, detail=detail)
    rec = recipe(
        ["bitdance", "eval", *argv],
        args.device,
        **model_fields(pipe),
        seeds=list(args.seeds),
        sampling=sampling or "model defaults",
        effective_defaults=pipe.defaults,
        parallel_num=res["parallel_num"],
        image_size=res["size"],
        tasks_per_category=args.n,
        methods=list(methods),
        held_out=(
            f"shapes scenes from the random stream '{STREAM}/...' (used by no training set, suite or "
            f"selection); garments: tinted fashion_mnist test items {GARMENT_FIRST}.."
            f"{GARMENT_FIRST + args.n - 1}, tint seed {GARMENT_TINT_SEED}"
        ),
        sensitivity="same mask, prompt and seed on the next source image of the same category",
        bootstrap="95% percentile, 1000 resamples of images (accuracy) or token positions (sensitivity)",
    )
    machine = rec.pop("machine", machine_info(args.device))
    tables = edit_tables(res)
    report = {
        "name": "edit_bench",
        "recipe": rec,
        "machine": machine,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": {**res["metrics"], "seconds": res["seconds"]},
        "tables": tables,
        "tasks": res["tasks"],
    }
    paths = write_report(args.out, report, "# Edit benchmark\n\n" + md_from_tables(tables))
    for m, v in res["metrics"].items():
        print(
            f"{m}: context-dependent {v['context_dependent']['accuracy']:.3f}, kept exact "
            f"{v['kept_tokens_exact']['fraction']:.3f}, sensitivity "
            f"{v['sensitivity']['all']['fraction']:.3f}, time {v['time_vs_plain']:.2f}x plain"
        )
    print(f"wrote {paths['json']} and {paths['markdown']}")
    if detail:
        _write_detail(args, report, res["sensitivity_detail"])
    return 0


def _write_detail(args: Any, report: dict[str, Any], summary: dict[str, Any]) -> None:
    """<out>/sensitivity_detail/report.json: the sensitivity detail, named edit_sensitivity_detail."""
    from pathlib import Path  # noqa: PLC0415

    from .edit_sensitivity import BLACK_MAX  # noqa: PLC0415
    from .report import write_report  # noqa: PLC0415

    rec = {
        **report["recipe"],
        "diagnostic": "edit_sensitivity.py: flags of both edits at each regenerated position (seed); not the "
        "benchmark's sensitivity, which 'sensitivity' here reproduces",
        "black_max_uint8": BLACK_MAX,
    }
    tables = detail_tables(summary)
    rep = {**report, "name": "edit_sensitivity_detail", "recipe": rec, "metrics": summary, "tables": tables}
    rep.pop("files", None)
    md = "# Edit benchmark: sensitivity detail\n\n" + md_from_tables(tables)
    paths = write_report(Path(args.out) / "sensitivity_detail", rep, md)
    for m, d in summary.items():
        a = d["all"]
        print(
            f"{m}: same positions {a['same']['n']}, black in both {a['same']['black_both']:.3f}; sensitivity "
            f"excluding black-in-both {a['excluding_black_both']['fraction']:.3f}"
        )
    print(f"wrote {paths['json']}")
