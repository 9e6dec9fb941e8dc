"""Edit benchmark (`bitdance eval edit --split dev|test`): edits whose correct result the prompt leaves open
and the kept part decides (tasks, splits and scorers: `edit_tasks.py`, `edit_scoring.py`).

Per method: context-dependent accuracy (every image of every category, scored on the whole image; 95 %
intervals resample tasks, then seeds within a task: `intervals.bootstrap_accuracy`), kept-region fidelity
(kept tokens bit-identical), sensitivity (the same edit -- mask, prompt, seed -- of the next source image
of the same category: fraction of regenerated token positions whose bits differ, split by where the position
lies in generation order relative to the kept tokens: before all of them, inside their span, after all of
them), and time per edit relative to a plain generation of the same prompt, seeds and settings. The plain
generations are also scored against the tasks: the prompt-only control (what the prompt alone gets right).
The report also carries the scorer check: the scorer on the tasks' real source images and on completions
that keep the kept part but contradict it (`edit_scoring.mismatched`). The default edit method of any-order
models is chosen on the dev split by `edit_rule.py`.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import torch

from ..generator.patches import order_for
from ..pipeline.editing import token_keep
from .adherence import AdherenceScorer
from .edit_scoring import mismatched, score_edits
from .edit_sensitivity import black_cells, detail_tables, edit_records, summarize
from .edit_tasks import (
    CATEGORIES,
    GARMENT_RANGES,
    GARMENT_SKIP_MULTIPLES_OF,
    GARMENT_TINT_SEED,
    STREAM,
    check_split,
)
from .edit_tasks import build_tasks as _build_tasks
from .intervals import bootstrap_accuracy

METHODS = ("substitute", "joint", "kept_first")
CONTROL = "prompt_only"
FAILURE_KINDS = 5  # most common failure reasons kept per method and category


def build_tasks(split: str, n_per_category: int, size: int, scorer: AdherenceScorer | None = None):  # noqa: ANN201
    """The split's tasks; garments filtered to sources the scorer's classifier names right (`edit_tasks`)."""
    classify = None if scorer is None else (lambda im: _classifier(scorer)([im])[0])
    return _build_tasks(split, n_per_category, size, classify)


def _classifier(scorer: AdherenceScorer):  # noqa: ANN202
    return lambda images: scorer.classify("fashion", list(images))


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


def _accuracy(outcomes: dict[str, list[list[float]]]) -> dict[str, Any]:
    """category -> per task its outcomes over seeds -> pooled and per-category accuracy with intervals."""
    cat_ci, _, image_ci = bootstrap_accuracy(outcomes)
    allv = [x for c in CATEGORIES for row in outcomes[c] for x in row]
    cats = {}
    for c in CATEGORIES:
        v = [x for row in outcomes[c] for x in row]
        cats[c] = {
            "accuracy": float(np.mean(v)),
            "ci95": list(cat_ci[c]),
            "n": len(v),
            "tasks": len(outcomes[c]),
        }
    pooled = {"accuracy": float(np.mean(allv)), "ci95": list(image_ci), "n": len(allv)}
    return {"context_dependent": pooled, "categories": cats}


def _coarse(why: str) -> str:
    """A failure reason without its numbers: 'found # objects, expected #', 'not in line ...'."""
    return re.sub(r" \(.*\)|\d+(\.\d+)?", "#", why).strip()


def scorer_check(tasks: list[dict[str, Any]], scorer: AdherenceScorer) -> dict[str, Any]:
    """Per category: the scorer's accuracy on the real source images and on contradicting completions."""
    expects = [t["expect"] for t in tasks]
    real = score_edits([t["image"] for t in tasks], expects, _classifier(scorer))
    wrong = score_edits([mismatched(t) for t in tasks], expects, _classifier(scorer))
    out = {}
    for c in CATEGORIES:
        idx = [i for i, t in enumerate(tasks) if t["category"] == c]
        out[c] = {
            "real_source": float(np.mean([real[i][0] for i in idx])),
            "mismatched": float(np.mean([wrong[i][0] for i in idx])),
            "n": len(idx),
        }
    return out


def evaluate_edits(
    pipe: Any,
    split: str,
    n_per_category: int,
    seeds: list[int],
    methods: tuple[str, ...] = METHODS,
    sampling: dict[str, Any] | None = None,
    scorer: AdherenceScorer | None = None,
    detail: bool = False,
) -> dict[str, Any]:
    """Run the benchmark on one split; returns metrics per method (and the prompt-only control), the scorer
    check and the task list. ``detail``: also the sensitivity detail (`edit_sensitivity.py`)."""
    kw = dict(sampling or {})
    size = pipe.generator.config.grid_size[0] * pipe.tokenizer.downsample
    p = kw.get("parallel_num") or pipe.defaults["parallel_num"]
    scorer = scorer or AdherenceScorer()
    classify = _classifier(scorer)
    tasks = build_tasks(split, n_per_category, size, scorer)
    f = pipe.tokenizer.downsample
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        by_cat[t["category"]].append(i)
    partner = {}
    for idx in by_cat.values():
        for j, i in enumerate(idx):
            partner[i] = idx[(j + 1) % len(idx)]
    outcomes: dict[str, dict[str, list[list[float]]]] = {m: defaultdict(list) for m in (CONTROL, *methods)}
    fidelity: dict[str, list[float]] = {m: [] for m in methods}
    reasons: dict[str, dict[str, Counter[str]]] = {m: defaultdict(Counter) for m in (CONTROL, *methods)}
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
        expects = [t["expect"]] * n_seeds
        start = time.perf_counter()
        plain = pipe(t["prompt"], seed=list(seeds), num_images_per_prompt=n_seeds, **kw)  # decoded, as edits
        times["plain"] += time.perf_counter() - start
        control = score_edits(plain.images, expects, classify)
        outcomes[CONTROL][t["category"]].append([float(ok) for ok, _ in control])
        reasons[CONTROL][t["category"]].update(_coarse(why) for ok, why in control if not ok)
        src_bits = pipe.tokenizer.encode(_tensor(t["image"])).float()
        other_bits = pipe.tokenizer.encode(_tensor(tasks[partner[i]]["image"])).float()
        for m in methods:
            start = time.perf_counter()
            out = _edit(pipe, t, src_bits[0], m, seeds, kw)
            times[m] += time.perf_counter() - start
            scores = score_edits(out.images, expects, classify)
            outcomes[m][t["category"]].append([float(ok) for ok, _ in scores])
            reasons[m][t["category"]].update(_coarse(why) for ok, why in scores if not ok)
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
    metrics: dict[str, Any] = {CONTROL: _accuracy(outcomes[CONTROL])}
    for c, d in metrics[CONTROL]["categories"].items():
        d["failures"] = dict(reasons[CONTROL][c].most_common(FAILURE_KINDS))
    for m in methods:
        sall = [x for v in sens[m].values() for x in v]
        slo, shi = bootstrap_ci(sall)
        metrics[m] = {
            **_accuracy(outcomes[m]),
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
        for c, d in metrics[m]["categories"].items():
            d["failures"] = dict(reasons[m][c].most_common(FAILURE_KINDS))
    extra = {"sensitivity_detail": summarize(records)} if detail else {}
    return {
        **extra,
        "metrics": metrics,
        "scorer_check": scorer_check(tasks, scorer),
        "seconds": times,
        "tasks": [
            {
                "category": t["category"],
                "prompt": t["prompt"],
                **({"index": t["index"]} if "index" in t else {}),
            }
            for t in tasks
        ],
        "parallel_num": p,
        "size": size,
    }


def _tensor(image: Any) -> torch.Tensor:
    from ..pipeline.editing import load_image  # noqa: PLC0415

    return load_image(image)


def edit_tables(res: dict[str, Any]) -> dict[str, Any]:
    """Shared-format tables: accuracy per category and method (prompt-only control first), fidelity /
    sensitivity / time per method, and the scorer check."""

    def acc(d: dict[str, Any]) -> str:
        return f"{d['accuracy']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"

    ms = res["metrics"]
    names = list(ms)
    first = ms[names[0]]
    rows = [
        [
            "all context-dependent",
            first["context_dependent"]["n"],
            *(acc(ms[m]["context_dependent"]) for m in names),
        ]
    ]
    rows += [
        [c, d["n"], *(acc(ms[m]["categories"][c]) for m in names)] for c, d in first["categories"].items()
    ]
    other = []
    for m, v in ms.items():
        if m == CONTROL:
            continue
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
    check = [
        [c, d["n"], f"{d['real_source']:.3f}", f"{d['mismatched']:.3f}"]
        for c, d in res["scorer_check"].items()
    ]
    return {
        "adherence": {
            "columns": ["category", "images", *(f"{m} (accuracy, 95% CI)" for m in names)],
            "rows": rows,
        },
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
        "scorer_check": {
            "columns": [
                "category",
                "tasks",
                "real source scored correct",
                "contradicting completion scored correct",
            ],
            "rows": check,
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
    split = check_split(args.split)
    res = evaluate_edits(pipe, split, args.n, list(args.seeds), methods, sampling, detail=detail)
    lo, hi = GARMENT_RANGES[split]
    rec = recipe(
        ["bitdance", "eval", *argv],
        args.device,
        **model_fields(pipe),
        seeds=list(args.seeds),
        sampling=sampling or "model defaults",
        effective_defaults=pipe.defaults,
        parallel_num=res["parallel_num"],
        image_size=res["size"],
        split=split,
        tasks_per_category=args.n,
        methods=list(methods),
        held_out=(
            f"shapes scenes from the random stream '{STREAM}/{split}/...' (used by nothing else); garments: "
            f"tinted fashion_mnist test items in {lo}..{hi - 1} (multiples of {GARMENT_SKIP_MULTIPLES_OF} "
            f"skipped), tint seed {GARMENT_TINT_SEED}, the first {args.n} tinted with a colour other than "
            "white, with a visible regenerated half, that the scorer's classifier names right"
        ),
        control="prompt_only: a plain generation of the task's prompt and seeds, scored like the edits",
        sensitivity="same mask, prompt and seed on the next source image of the same category",
        bootstrap="95% percentile, 1000 resamples: tasks, then seeds within a task (accuracy); token "
        "positions (sensitivity)",
    )
    machine = rec.pop("machine", machine_info(args.device))
    tables = edit_tables(res)
    extra = {}
    if split == "dev":
        from .edit_rule import choose_default_method  # noqa: PLC0415

        extra["default_method_rule"] = choose_default_method(res["metrics"])
    report = {
        "name": "edit_bench" if split == "test" else "edit_bench_dev",
        "recipe": rec,
        "machine": machine,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": {**res["metrics"], "seconds": res["seconds"], **extra},
        "scorer_check": res["scorer_check"],
        "tables": tables,
        "tasks": res["tasks"],
    }
    paths = write_report(args.out, report, "# Edit benchmark\n\n" + md_from_tables(tables))
    c = res["metrics"][CONTROL]["context_dependent"]
    print(f"{CONTROL}: context-dependent {c['accuracy']:.3f}")
    for m, v in res["metrics"].items():
        if m == CONTROL:
            continue
        print(
            f"{m}: context-dependent {v['context_dependent']['accuracy']:.3f}, kept exact "
            f"{v['kept_tokens_exact']['fraction']:.3f}, sensitivity "
            f"{v['sensitivity']['all']['fraction']:.3f}, time {v['time_vs_plain']:.2f}x plain"
        )
    if "default_method_rule" in extra:
        r = extra["default_method_rule"]
        print(f"default-method rule (dev): {r['method']} (best {r['best']}, tied {', '.join(r['tied'])})")
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
