"""`bitdance eval` and `bitdance bench`: thin argument parsing over the evaluation library.

    bitdance eval tokenizer --tokenizer FOLDER --data fashion_mnist --split test --n 1000
    bitdance eval fid       --model M --data fashion_mnist --split test --n 1000 --features cls,effnet
    bitdance eval adherence --model M --prompts default --seeds 0,1,2,3
    bitdance eval edit      --model M --split dev --n 12 --seeds 0,1,2,3
    bitdance bench          --model M --batch-sizes 1,16 --parallel 1,4,16
    bitdance bench --vs-diffusion --model M --baseline runs/baseline --data fashion_mnist --n 500

Each writes <out>/report.json, <out>/report.md and PNG plots (default out: runs/eval/<what>).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

EVAL_KINDS = ("tokenizer", "fid", "adherence", "edit")
DATA_DEFAULTS: dict[str, dict[str, Any]] = {"fashion_mnist": {"tint": True}}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors ("error: ...", exit 2), like every other bitdance input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return vals


def _option_value(text: str) -> Any:  # noqa: ANN401
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def data_options(dataset: str, pairs: list[str]) -> dict[str, Any]:
    opts = dict(DATA_DEFAULTS.get(dataset, {}))
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--data-option must look like KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        opts[k.strip()] = _option_value(v.strip())
    return opts


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", default=out, help=f"report folder (default {out})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1, or $BITDANCE_THREADS)")


def _model(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--model",
        required=required,
        help="shipped model name, pipeline folder, or random:<preset> (smoke tests)",
    )


def _sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, help="head sampling steps per AR step (default: model's)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (default: model's)")
    p.add_argument("--cfg-schedule", choices=["constant", "linear"], help="guidance schedule")
    p.add_argument("--parallel", type=int, help="tokens per AR step P (default: model's)")
    p.add_argument("--solver", default="euler_maruyama", help="head solver (default euler_maruyama)")
    p.add_argument("--batch-size", type=int, default=16, help="images per pipeline call (default 16)")
    p.add_argument(
        "--filter-mode",
        choices=["block", "warn", "off"],
        default="warn",
        help="content filter while measuring (default warn: a prompt the filter would refuse is still "
        "drawn and scored, with a warning, so one false positive does not end the run)",
    )


def _data(p: argparse.ArgumentParser, n: int) -> None:
    p.add_argument("--data", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--split", default="test", help="split (default test)")
    p.add_argument("--n", type=int, default=n, help=f"number of images (default {n})")
    p.add_argument(
        "--data-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, repeatable (fashion_mnist defaults to tint=true)",
    )


def build_eval_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bitdance eval", description="Evaluate a tokenizer or generator.")
    sub = p.add_subparsers(dest="what", required=True, metavar="{tokenizer,fid,adherence,edit}")
    t = sub.add_parser("tokenizer", help="PSNR, SSIM, bits per pixel, bit balance, code entropy")
    t.add_argument("--tokenizer", help="tokenizer component folder (config.json + model.safetensors)")
    _model(t, required=False)
    _data(t, 1000)
    t.add_argument("--size", type=int, help="image size (default: the tokenizer's training size)")
    t.add_argument("--batch-size", type=int, default=64)
    _common(t, "runs/eval/tokenizer")
    f = sub.add_parser("fid", help="FID/KID (FID_cls, EfficientNet, optional Inception), IS-style score")
    _model(f, required=False)
    f.add_argument(
        "--compare-split",
        help="instead of a model: score items 0..n-1 of this split of the same "
        "dataset against the reference (the data-vs-data floor of each metric)",
    )
    f.add_argument("--size", type=int, default=32, help="image size with --compare-split (default 32)")
    _data(f, 1000)
    f.add_argument("--features", default="cls,effnet", help="comma list of cls, effnet, inception")
    f.add_argument("--inception-weights", help="pt_inception-2015-12-05 weights file (you supply it)")
    f.add_argument("--seed", type=int, default=0, help="image i uses seed + i (default 0)")
    f.add_argument("--cache-dir", help="reference feature cache (default $BITDANCE_CACHE/eval)")
    f.add_argument("--no-cache", action="store_true", help="recompute reference features, write nothing")
    _sampling(f)
    _common(f, "runs/eval/fid")
    a = sub.add_parser("adherence", help="GenEval-style prompt adherence with analytic/classifier scorers")
    _model(a)
    a.add_argument(
        "--prompts",
        default="default",
        help="JSONL file, or a shipped suite: default, paraphrase, emoji-monitor, shapes-monitor, freeform",
    )
    a.add_argument(
        "--split",
        default="all",
        choices=["dev", "test", "all"],
        help="prompts of this split only (suites with a fixed split, e.g. freeform; default all: every "
        "prompt, the report also gives each split)",
    )
    a.add_argument("--seeds", type=_int_list, default=[0, 1, 2, 3], help="seeds per prompt (default 0,1,2,3)")
    a.add_argument(
        "--limit",
        type=int,
        help="smoke runs only: the first N prompts of each category (and split); the report says so and "
        "`bitdance adherence-report results` refuses it without --allow-limited",
    )
    _sampling(a)
    _common(a, "runs/eval/adherence")
    e = sub.add_parser("edit", help="edit benchmark: context-dependent edits, fidelity, sensitivity, time")
    _model(e)
    e.add_argument(
        "--split",
        default="dev",
        choices=["dev", "test"],
        help="task split (default dev; dev steers the default-method rule, test reports: run it once)",
    )
    e.add_argument("--n", type=int, default=12, help="tasks per category (default 12)")
    e.add_argument("--seeds", type=_int_list, default=[0, 1, 2, 3], help="seeds per task (default 0,1,2,3)")
    e.add_argument("--methods", default="substitute,joint,kept_first", help="edit methods to compare")
    e.add_argument(
        "--sensitivity-detail",
        action="store_true",
        help="also write <out>/sensitivity_detail/report.json: what the regenerated tokens are at positions "
        "that are the same / differ for both sources (background token, decoded patch black)",
    )
    _sampling(e)
    _common(e, "runs/eval/edit")
    return p


def build_bench_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bitdance bench",
        description="Speed benchmark; --vs-diffusion compares "
        "quality and speed with the diffusion baseline in one run.",
    )
    _model(p, required=False)  # every mode but --training-speed checks it (run_bench)
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 16], help="default 1,16")
    p.add_argument("--parallel", type=_int_list, help="P values (default 1,4,16 where supported)")
    p.add_argument("--steps", type=int, help="head sampling steps per AR step (default: model's)")
    p.add_argument("--cfg", type=float, help="guidance scale (default: model's)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per configuration (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting call")
    p.add_argument(
        "--peak-size", type=int, default=2048, help="n of the n x n fp32 matmul peak test (default 2048)"
    )
    p.add_argument("--seed", type=int, default=0)
    s = p.add_argument_group("--sampler-speed (docs/speed.md)")
    s.add_argument(
        "--sampler-speed",
        action="store_true",
        help="named sampler settings vs reference: official B-16x shape, the model at batch 1 and 16, "
        "README command, training samples/s",
    )
    s.add_argument("--settings", default="reference,fast-exact,fast,fast4", help="settings for the model")
    s.add_argument("--official-settings", default="reference,fast-exact,fast4", help="settings at B-16x")
    s.add_argument("--skip", default="", help="comma list of sections to skip: official, readme, training")
    t = p.add_argument_group("--training-speed (docs/speed.md)")
    t.add_argument(
        "--training-speed",
        action="store_true",
        help="generator training steps, --train-impl fast vs reference, interleaved (no --model needed); "
        "writes speed_training.json",
    )
    t.add_argument("--preset", default="mini", help="generator preset for --training-speed (default mini)")
    t.add_argument("--train-batch", type=int, default=32, help="batch for --training-speed (default 32)")
    t.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --training-speed (default 5)")
    v = p.add_argument_group("--vs-diffusion")
    v.add_argument("--vs-diffusion", action="store_true", help="compare with a trained diffusion baseline")
    v.add_argument("--baseline", help="baseline folder (bitdance train-baseline train)")
    v.add_argument(
        "--baseline-steps", type=_int_list, default=[5, 10, 20, 50], help="sampler steps (default 5,10,20,50)"
    )
    v.add_argument("--baseline-samplers", default="dpmpp", help="comma list of dpmpp, ddim (default dpmpp)")
    v.add_argument(
        "--baseline-cfg", type=float, help="baseline guidance scale (default: the dev-best scale of its run)"
    )
    v.add_argument(
        "--vs-head-steps", type=_int_list, default=[5, 10, 20], help="our head steps (default 5,10,20)"
    )
    v.add_argument("--bootstrap-reps", type=int, default=200, help="FID interval resamples (default 200)")
    v.add_argument("--results", help="also write the committed report here (docs/results/vs_diffusion.json)")
    v.add_argument("--images-dir", help="also write the frontier plot and baseline grid here (docs/images)")
    v.add_argument(
        "--vs-batch-size", type=int, default=16, help="images per call in the comparison (default 16)"
    )
    v.add_argument("--cache-dir")
    _data(p, 500)
    _common(p, "runs/eval/bench")
    return p


def _sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw = {
        "num_sampling_steps": args.steps,
        "guidance_scale": args.cfg,
        "guidance_schedule": getattr(args, "cfg_schedule", None),
        "parallel_num": getattr(args, "parallel", None),
        "solver": getattr(args, "solver", "euler_maruyama"),
    }
    return {k: v for k, v in kw.items() if v is not None}


def _pipeline(args: argparse.Namespace):  # noqa: ANN202
    from ..pipeline import BitDancePipeline

    mode = getattr(args, "filter_mode", "block")
    return BitDancePipeline.from_pretrained(args.model, device=args.device, filter_mode=mode)


def _native_size(pipe: Any) -> int:
    """The model's training resolution (square): token grid x tokenizer downsampling."""
    h, w = pipe.generator.config.grid_size
    if h != w:
        raise ValueError(f"evaluation needs a square token grid, this model's is {h}x{w}")
    return h * pipe.tokenizer.downsample


def _model_fields(pipe: Any) -> dict[str, Any]:
    return {
        "model": pipe.name,
        "model_hash": pipe.model_hash,
        "generator_params": sum(p.numel() for p in pipe.generator.parameters()),
    }


def _finish(
    args: argparse.Namespace,
    kind: str,
    results: dict[str, Any],
    rec: dict[str, Any],
    markdown: str,
    pngs: dict[str, bytes],
    summary: str,
) -> int:
    from .report import write_report

    paths = write_report(args.out, {"kind": kind, "results": results, "recipe": rec}, markdown, pngs)
    print(summary)
    print(f"wrote {paths['json']}, {paths['markdown']} and {len(pngs)} plot(s) in {Path(args.out)}")
    return 0


def run_tokenizer(args: argparse.Namespace, argv: list[str]) -> int:
    from ..checkpoint import from_pretrained
    from .features import load_real_set
    from .report import recipe
    from .tokenizer_eval import evaluate_tokenizer, tokenizer_markdown, tokenizer_plots

    if bool(args.tokenizer) == bool(args.model):
        raise ValueError("give exactly one of --tokenizer FOLDER or --model M")
    if args.tokenizer:
        tok, name = from_pretrained(args.tokenizer, device=args.device), str(args.tokenizer)
    else:
        pipe = _pipeline(args)
        tok, name = pipe.tokenizer, pipe.name
    size = args.size or tok.config.image_size
    real = load_real_set(args.data, args.split, size, args.n, data_options(args.data, args.data_option))
    res = evaluate_tokenizer(tok, real.images, args.batch_size)
    from .features import weights_hash

    rec = recipe(
        ["bitdance", "eval", *argv],
        args.device,
        tokenizer=name,
        tokenizer_hash=weights_hash(tok),
        data=real.key,
        samples=res["images"],
    )
    pngs = tokenizer_plots(res)
    res.pop("examples")
    summary = (
        f"PSNR {res['psnr_db']:.2f} dB  SSIM {res['ssim']:.4f}  bits/pixel {res['bits_per_pixel']:.3f}  "
        f"balance dev {res['balance_mean_abs_deviation']:.4f}  group entropy "
        f"{res['group_entropy_mean']:.3f} bits"
    )
    return _finish(args, "eval-tokenizer", res, rec, tokenizer_markdown(res, rec), pngs, summary)


def run_fid(args: argparse.Namespace, argv: list[str]) -> int:
    from .features import load_real_set, parse_feature_list
    from .quality import conditions_for, evaluate_quality, generate_images, quality_markdown, quality_plots
    from .report import recipe

    kinds = parse_feature_list(args.features)
    if "inception" in kinds and not args.inception_weights:
        from .inception import WEIGHTS_HINT

        raise ValueError(f"--features inception needs --inception-weights FILE: {WEIGHTS_HINT}")
    if bool(args.model) == bool(args.compare_split):
        raise ValueError("give exactly one of --model M or --compare-split SPLIT")
    opts = data_options(args.data, args.data_option)
    if args.compare_split:
        real = load_real_set(args.data, args.split, args.size, args.n, opts)
        other = load_real_set(args.data, args.compare_split, args.size, args.n, opts)
        fake, fields, seconds = other.images, {"compared_with": other.key}, None
        fake_labels = other.labels
    else:
        pipe = _pipeline(args)
        real = load_real_set(args.data, args.split, _native_size(pipe), args.n, opts)
        fake, seconds, settings = generate_images(
            pipe, conditions_for(pipe, real), args.seed, args.batch_size, _sampling_kwargs(args)
        )
        fields = {
            **_model_fields(pipe),
            "sampling": settings,
            "seeds": f"{args.seed}..{args.seed + args.n - 1} (image i: seed + i)",
            "batch_size": args.batch_size,
            "filter_mode": args.filter_mode,
        }
        fake_labels = None
    res = evaluate_quality(
        fake, real, kinds, args.inception_weights, args.cache_dir, not args.no_cache, fake_labels=fake_labels
    )
    if seconds:
        res.update(generation_seconds=seconds, images_per_second=len(fake) / seconds)
    rec = recipe(["bitdance", "eval", *argv], args.device, **fields, samples=args.n, data=real.key)
    summary = "  ".join(f"{k}: FID {v['fid']:.3f} KID {v['kid']:.4f}" for k, v in res["features"].items())
    return _finish(
        args,
        "eval-fid",
        res,
        rec,
        quality_markdown(res, rec),
        quality_plots(res, fake, real.images, real.captions),
        summary,
    )


def run_adherence(args: argparse.Namespace, argv: list[str]) -> int:
    from .adherence import evaluate_adherence
    from .adherence_report import adherence_markdown, adherence_plots
    from .prompts import load_suite, suite_path
    from .report import recipe

    specs = load_suite(args.prompts, split=args.split)
    if args.limit is not None:
        specs = first_per_category(specs, args.limit)
    pipe = _pipeline(args)
    sampling = _sampling_kwargs(args)
    res = evaluate_adherence(pipe, specs, args.seeds, args.batch_size, sampling)
    rec = recipe(
        ["bitdance", "eval", *argv],
        args.device,
        **_model_fields(pipe),
        sampling=sampling or "model defaults",
        effective_defaults=pipe.defaults,
        seeds=args.seeds,
        prompts=str(suite_path(args.prompts)),
        split=args.split,
        filter_mode=args.filter_mode,
        **({"limit": args.limit} if args.limit is not None else {}),
        num_prompts=len(specs),
        samples=len(specs) * len(args.seeds),
    )
    pngs = adherence_plots(res)
    res.pop("samples")
    s = res["summary"]
    summary = (
        f"overall {s['overall']:.4f} [{s['overall_ci95'][0]:.3f}, {s['overall_ci95'][1]:.3f}] "
        f"(image mean {s['image_accuracy']:.4f}); "
        + ", ".join(f"{c} {v['accuracy']:.3f}" for c, v in s["categories"].items())
        + "".join(
            f"\n{sp}: overall {v['overall']:.4f} [{v['overall_ci95'][0]:.3f}, {v['overall_ci95'][1]:.3f}]"
            for sp, v in s.get("splits", {}).items()
        )
    )
    return _finish(args, "eval-adherence", res, rec, adherence_markdown(res, rec), pngs, summary)


def first_per_category(specs: list[Any], limit: int) -> list[Any]:
    """The first ``limit`` prompts of each (split, category), in file order (smoke runs)."""
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    seen: dict[tuple[Any, str], int] = {}
    kept = []
    for s in specs:
        key = (s.split, s.category)
        if seen.get(key, 0) < limit:
            seen[key] = seen.get(key, 0) + 1
            kept.append(s)
    return kept


def run_edit(args: argparse.Namespace, argv: list[str]) -> int:
    from .edit_bench import run_edit_bench

    return run_edit_bench(args, argv, _pipeline(args), _sampling_kwargs(args), _model_fields)


def _run_vs_diffusion(args: argparse.Namespace, argv: list[str], pipe: Any) -> int:
    from ..core.atomic import atomic_write_bytes
    from .baseline import SAMPLERS, DiffusionBaseline
    from .features import load_real_set
    from .report import recipe
    from .versus import compare, comparison_table, versus_markdown, versus_plots, write_results

    if not args.baseline:
        raise ValueError(
            "--vs-diffusion needs --baseline FOLDER (train one with "
            "bitdance train-baseline train --out FOLDER --budget-minutes N)"
        )
    samplers = [s.strip() for s in args.baseline_samplers.split(",") if s.strip()]
    bad = [s for s in samplers if s not in SAMPLERS]
    if bad or not samplers:
        raise ValueError(
            f"--baseline-samplers takes a comma list of {', '.join(SAMPLERS)}, got {bad or '[]'}"
        )
    if any(s < 1 or s > 1000 for s in args.baseline_steps + args.vs_head_steps):
        raise ValueError("--baseline-steps and --vs-head-steps must be in 1..1000")
    if args.bootstrap_reps < 0 or args.bootstrap_reps == 1:
        raise ValueError(f"--bootstrap-reps must be 0 (off) or >= 2, got {args.bootstrap_reps}")
    base = DiffusionBaseline(args.baseline)
    supported = pipe.generator.config.supported_parallel
    pnums = args.parallel or [p for p in (1, 4, 16) if p in supported] or [pipe.generator.config.parallel_num]
    ours = [(p, s) for p in pnums for s in args.vs_head_steps]
    real = load_real_set(
        args.data, args.split, _native_size(pipe), args.n, data_options(args.data, args.data_option)
    )
    res = compare(
        pipe,
        base,
        real,
        ours,
        args.baseline_steps,
        samplers,
        args.baseline_cfg,
        args.seed,
        args.vs_batch_size,
        args.cache_dir,
        args.bootstrap_reps,
        not args.no_flops,
    )
    rec = recipe(
        ["bitdance", "bench", *argv],
        args.device,
        **_model_fields(pipe),
        baseline=str(args.baseline),
        baseline_weights_hash=base.weights_hash,
        seeds=f"{args.seed}..{args.seed + args.n - 1} (image i: seed + i)",
        samples=args.n,
        data=real.key,
        batch_size=args.vs_batch_size,
    )
    pngs = versus_plots(res, real.captions)
    if args.results:
        print(f"wrote {write_results(args.results, res, rec)}")
    if args.images_dir:
        for src, dst in (
            ("frontier.png", "vs_diffusion_frontier.png"),
            ("baseline_samples.png", "baseline_samples.png"),
        ):
            atomic_write_bytes(Path(args.images_dir) / dst, pngs[src])
    for p in res["points"]:
        p.pop("samples")
    return _finish(
        args, "bench-vs-diffusion", res, rec, versus_markdown(res, rec), pngs, comparison_table(res)
    )


def run_bench(args: argparse.Namespace, argv: list[str]) -> int:
    from .report import recipe

    if args.training_speed:
        return _run_training_speed(args, argv)
    if not args.model:
        raise ValueError("bitdance bench needs --model (a shipped model name or a pipeline folder)")
    pipe = _pipeline(args)
    if args.sampler_speed:
        return _run_sampler_speed(args, argv, pipe)
    if args.vs_diffusion:
        return _run_vs_diffusion(args, argv, pipe)
    from .speed import bench_generation, speed_markdown, speed_plots

    supported = pipe.generator.config.supported_parallel
    pnums = args.parallel or [p for p in (1, 4, 16) if p in supported] or [pipe.generator.config.parallel_num]
    res = bench_generation(
        pipe,
        args.batch_sizes,
        pnums,
        args.steps,
        args.cfg,
        args.repeats,
        args.warmup,
        args.seed,
        flops=not args.no_flops,
        peak_size=args.peak_size,
    )
    rec = recipe(
        ["bitdance", "bench", *argv],
        args.device,
        **_model_fields(pipe),
        seed=args.seed,
        num_sampling_steps=res["num_sampling_steps"],
        guidance_scale=res["guidance_scale"],
        repeats=args.repeats,
        warmup=args.warmup,
    )
    lines = [
        f"P={r['parallel_num']:<3} batch={r['batch_size']:<3} {r['images_per_second']:8.3f} images/s  "
        f"{r['seconds_per_image']:.4f} s/image  x{r['speedup_vs_smallest_p']:.2f}"
        for r in res["rows"]
    ]
    return _finish(
        args, "bench-speed", res, rec, speed_markdown(res, rec), speed_plots(res), "\n".join(lines)
    )


def _run_sampler_speed(args: argparse.Namespace, argv: list[str], pipe: Any) -> int:
    from .report import recipe
    from .sampler_speed import bench_sampler_speed, sampler_speed_markdown, shared_report

    skip = {x for x in args.skip.split(",") if x}
    if skip - {"official", "readme", "training"}:
        raise ValueError(f"--skip takes official, readme, training; got {sorted(skip)}")
    res = bench_sampler_speed(
        pipe,
        [x for x in args.settings.split(",") if x],
        [x for x in args.official_settings.split(",") if x],
        args.batch_sizes,
        args.repeats,
        args.seed,
        args.peak_size,
        official="official" not in skip,
        readme="readme" not in skip,
        training="training" not in skip,
    )
    rec = recipe(["bitdance", "bench", *argv], args.device, **_model_fields(pipe), seed=args.seed)
    from ..checkpoint import atomic_write_bytes

    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(args.out) / "speed_sampler.json", shared_report(res, rec).encode())
    md = sampler_speed_markdown(res)
    return _finish(args, "bench-sampler-speed", res, rec, md, {}, md)


def _run_training_speed(args: argparse.Namespace, argv: list[str]) -> int:
    from ..checkpoint import atomic_write_bytes
    from .report import recipe
    from .training_speed import bench_training_speed, shared_report, training_speed_markdown

    if not 1 <= args.train_batch <= 1024 or not 1 <= args.rounds <= 100:
        raise ValueError(
            f"--train-batch must be in 1..1024 and --rounds in 1..100; got {args.train_batch}, {args.rounds}"
        )
    res = bench_training_speed(
        args.preset,
        args.train_batch,
        args.rounds,
        args.warmup,
        args.parallel[0] if args.parallel else None,
        args.peak_size,
        args.seed,
    )
    rec = recipe(
        ["bitdance", "bench", *argv],
        args.device,
        preset=args.preset,
        batch=args.train_batch,
        rounds=args.rounds,
        warmup=args.warmup,
        seed=args.seed,
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(args.out) / "speed_training.json", shared_report(res, rec).encode())
    md = training_speed_markdown(res)
    return _finish(args, "bench-training-speed", res, rec, md, {}, md)


def _check_common(args: argparse.Namespace) -> None:
    try:
        dev = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"unknown --device {args.device!r}; use cpu or cuda[:index]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available here; use --device cpu")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    n = getattr(args, "n", None)
    if n is not None and n < 2:
        raise ValueError(f"--n must be >= 2, got {n}")
    for flag in ("batch_size", "vs_batch_size"):
        bs = getattr(args, flag, None)
        if bs is not None and not 1 <= bs <= 64:
            raise ValueError(f"--{flag.replace('_', '-')} must be in 1..64, got {bs}")


def run_verb(verb: str, argv: list[str]) -> int:
    """Entry point used by ``bitdance.cli``: verb 'eval' or 'bench'."""
    if verb == "eval":
        args = build_eval_parser().parse_args(argv)
        _check_common(args)
        runs = {"tokenizer": run_tokenizer, "fid": run_fid, "adherence": run_adherence, "edit": run_edit}
        return runs[args.what](args, argv)
    if verb == "bench":
        args = build_bench_parser().parse_args(argv)
        _check_common(args)
        return run_bench(args, argv)
    raise ValueError(f"unknown evaluation verb {verb!r}; allowed: eval, bench")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m bitdance.evaluation.cli {eval,bench} ...", file=sys.stderr)
        return 2
    try:
        return run_verb(argv[0], argv[1:])
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
