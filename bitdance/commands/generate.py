"""`bitdance generate`: prompts (or class labels, templates, a prompts file) -> PNG files with provenance.

    bitdance generate "a red sneaker" -o sneaker.png
    bitdance generate --template product --var subject="a red sneaker" --n 4 --out-dir out
    bitdance generate --prompts prompts.jsonl --out-dir out          # resumable; torchrun shards it
    bitdance generate --replay out/00000-0.png -o again.png          # byte-identical regeneration

Exit codes: 0 done, 1 a prompt was refused by the content filter, 2 bad input.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..sampling.presets import DEFAULT_SAMPLER, SAMPLER_PRESETS, sampler_settings
from ._common import (
    Parser,
    Progress,
    check_output,
    check_size_supported,
    parse_size,  # noqa: F401  (HEIGHTxWIDTH; `bitdance export` imports it from here)
    sampling_kwargs,
    size_notes,
    size_option,
)

# `bitdance generate` ends without interpreter teardown (bitdance/cli.py): every PNG is written atomically
# before main returns, and freeing torch and the models at exit cost ~0.5 s of the README command
EXIT_WITHOUT_TEARDOWN = True

# options that a replay takes from the image; giving them with --replay is an error, not silently ignored
_RECIPE_OPTIONS = (
    "prompts",
    "template",
    "var",
    "class_label",
    "size",
    "size_hw",
    "steps",
    "sampler",
    "cfg",
    "cfg_schedule",
    "parallel",
    "negative",
    "upscale",
    "color",
)


def build_parser() -> Parser:
    p = Parser(prog="bitdance generate", description="Generate images with a BitDance model.")
    p.add_argument("prompt", nargs="?", help="text prompt (text-to-image models)")
    p.add_argument("-o", "--output", help="output PNG (single prompt); default: <out-dir>/<index>-<seed>.png")
    p.add_argument(
        "--out-dir", default="outputs", help="folder for outputs when -o is not given (default: outputs)"
    )
    p.add_argument(
        "--model",
        help="shipped model name, local pipeline folder, or random:<preset> "
        "(default: bitdance-mini; with --replay: the model recorded in the image)",
    )
    p.add_argument(
        "--class", dest="class_label", help="class label (index or name) for class-conditional models"
    )
    p.add_argument("--n", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="base seed: image k uses seed + k unless the prompts file gives a seed (default 0)",
    )
    p.add_argument("--size", help="WIDTHxHEIGHT in pixels, e.g. 48x32 (default: the model's native size)")
    p.add_argument("--size-hw", help="deprecated: HEIGHTxWIDTH, the order --size used before")
    p.add_argument("--steps", type=int, help="head sampling steps per AR step (default: model's)")
    p.add_argument(
        "--sampler",
        metavar="NAME",
        help=f"named sampler setting: {', '.join(SAMPLER_PRESETS)} (default {DEFAULT_SAMPLER}: the official "
        "sampler at the model's steps; fast settings: docs/speed.md). Sets the solver and head steps, "
        "so it excludes --steps; the PNG records both, and --replay reproduces them",
    )
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (default: model's)")
    p.add_argument("--cfg-schedule", choices=["constant", "linear"], help="guidance schedule over AR steps")
    p.add_argument("--parallel", type=int, help="tokens per AR step P (1, 4, 16, ...; default: model's)")
    p.add_argument("--negative", help="negative prompt (text models; not content-filtered)")
    p.add_argument(
        "--prompts", help="JSONL or CSV file of prompts / template variables (see docs/inference.md)"
    )
    p.add_argument("--template", help="prompt template name (see --list-templates)")
    p.add_argument(
        "--var", action="append", default=[], metavar="KEY=VALUE", help="template variable (repeatable)"
    )
    p.add_argument("--templates-file", help="JSON/YAML file of extra templates")
    p.add_argument("--list-templates", action="store_true", help="print the available templates and exit")
    p.add_argument("--upscale", type=int, choices=[2, 4], help="upscale the decoded image 2x or 4x")
    p.add_argument("--upscale-method", default="lanczos", choices=["lanczos", "bicubic", "nearest"])
    p.add_argument(
        "--color",
        help="colour looks, comma-separated: auto, white-balance, contrast, warm, cool, vivid, mono",
    )
    p.add_argument("--replay", metavar="PNG", help="regenerate a bitdance PNG from its recorded recipe")
    p.add_argument("--force", action="store_true", help="with --replay: allow a different model hash")
    p.add_argument(
        "--filter-mode",
        choices=["block", "warn", "off"],
        help="content filter mode (default block; with --replay: the recorded mode)",
    )
    p.add_argument("--safety-rules", help="extra content-filter rule file (JSON/YAML, see docs/safety.md)")
    p.add_argument("--no-resume", action="store_true", help="with --prompts: regenerate finished items too")
    p.add_argument("--batch-size", type=int, default=1, help="images per model call (default 1)")
    p.add_argument(
        "--device", default="cpu", help="torch device (default cpu; cuda uses LOCAL_RANK under torchrun)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def load_pipeline(model: str, device: str, filter_mode: str | None, rules_file: str | None) -> Any:
    """Build the pipeline with the requested content-filter settings."""
    from ..pipeline import BitDancePipeline  # noqa: PLC0415

    safety = None
    if rules_file:
        from ..safety import ContentFilter, RuleSet  # noqa: PLC0415

        safety = ContentFilter(RuleSet.from_file(rules_file), filter_mode or "block")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return BitDancePipeline.from_pretrained(
        model, device=device, filter_mode=filter_mode or "block", safety=safety
    )


def _replay(args: Any) -> int:
    from ..pipeline.provenance import is_marked, read_recipe  # noqa: PLC0415

    given = [o for o in _RECIPE_OPTIONS if getattr(args, o) not in (None, [], False)]
    if args.prompt is not None or given:
        flag = "--" + given[0].replace("_", "-").replace("class-label", "class") if given else "the prompt"
        raise ValueError(f"--replay takes every setting from the image; remove {flag}")
    recipe = read_recipe(args.replay)
    path = Path(args.output) if args.output else Path(args.out_dir) / f"{Path(args.replay).stem}-replay.png"
    check_output(args.output if args.output else str(path))
    try:
        model = args.model or recipe.get("model") or "bitdance-mini"
        pipe = load_pipeline(model, args.device, args.filter_mode, args.safety_rules)
    except ValueError as e:
        if args.model:
            raise
        raise ValueError(f"{e}; pass --model NAME_OR_FOLDER to choose the model to replay with") from None
    out = pipe.replay(recipe, force=args.force, filter_mode=args.filter_mode)
    out.marked = is_marked(args.replay)  # a PNG made before marking existed is reproduced as it was
    out.save(path, 0)
    print(path)
    return 0


def _rows(args: Any, text: bool, variables: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    from ..pipeline.batch import read_rows  # noqa: PLC0415

    if args.prompts:
        if args.prompt is not None:
            raise ValueError("give either a prompt or --prompts FILE, not both")
        if args.output:
            raise ValueError("-o is for a single prompt; with --prompts use --out-dir")
        return read_rows(args.prompts)
    if not text:
        if args.prompt is not None or args.template:
            raise ValueError("this is a class-conditional model: pass --class LABEL (prompts are not used)")
        if args.class_label is None:
            raise ValueError("this is a class-conditional model: pass --class LABEL")
        return [("command line", {})]
    if args.prompt is not None and args.template:
        raise ValueError("give either a prompt or --template with --var, not both")
    if args.prompt is None and not args.template:
        raise ValueError('give a prompt, e.g. bitdance generate "a red sneaker" -o sneaker.png')
    return [("command line", {"prompt": args.prompt} if args.prompt is not None else {})]


def check_sampler(args: Any) -> None:
    """`--sampler` names a setting and is not combined with `--steps` (bad input: a clear error)."""
    if args.sampler is None:
        return
    if args.sampler not in SAMPLER_PRESETS:
        raise ValueError(f"unknown --sampler {args.sampler!r}; allowed: {', '.join(SAMPLER_PRESETS)}")
    if args.steps is not None:
        raise ValueError("--sampler sets the head steps; give either --sampler or --steps, not both")


def sampler_kwargs(args: Any, pipe: Any) -> dict[str, Any]:
    """Pipeline arguments {solver, num_sampling_steps} of `--sampler` for this model ({} without it)."""
    if args.sampler is None:
        return {}
    kw = sampler_settings(args.sampler, pipe.defaults["num_sampling_steps"])
    return {"solver": kw["solver"], "num_sampling_steps": kw["num_sampling_steps"]}


def _generate(args: Any) -> int:
    from ..pipeline.batch import check_items, dist_info, plan_items, run_items, shard  # noqa: PLC0415
    from ..pipeline.templates import load_templates, parse_vars  # noqa: PLC0415
    from ..safety import format_verdict  # noqa: PLC0415

    rank, world = dist_info()
    check_output(args.output, None if args.output else args.out_dir)
    h, w = size_option(args)
    templates = load_templates(args.templates_file)
    variables = parse_vars(args.var)
    if variables and not args.template:
        raise ValueError("--var needs --template NAME")
    if args.template:
        templates.get(args.template)
    check_sampler(args)  # before the model loads
    pipe = load_pipeline(args.model or "bitdance-mini", args.device, args.filter_mode, args.safety_rules)
    check_size_supported(pipe, h, w)
    text = pipe.is_text
    if args.class_label is not None and text:
        raise ValueError("--class is for class-conditional models; this model takes prompts")
    label: int | str | None = args.class_label
    if isinstance(label, str) and label.isdigit():
        label = int(label)
    rows = _rows(args, text, variables)
    items = plan_items(
        rows,
        out_dir=args.out_dir,
        text_model=text,
        templates=templates,
        template=args.template,
        variables=variables,
        n=args.n,
        base_seed=args.seed,
        negative=args.negative,
        class_label=label,
    )
    if not args.prompts and args.output:
        out = Path(args.output)
        for it in items:
            it.path = (
                out if len(items) == 1 else out.with_name(f"{out.stem}-{it.index}{out.suffix or '.png'}")
            )
    call = {
        "height": h,
        "width": w,
        **sampling_kwargs(args),
        **sampler_kwargs(args, pipe),
    }
    pipe.resolve_settings(**call)  # bad settings fail before the content check and any work
    for v in check_items(pipe, items):
        print(f"warning: {format_verdict(v)}", file=sys.stderr)
    size_notes(args)
    progress = Progress(enabled=False if args.quiet else None)
    try:
        results = run_items(
            pipe,
            shard(items, rank, world),
            call,
            resume=bool(args.prompts) and not args.no_resume,
            batch_size=args.batch_size,
            callback=progress,
        )
    finally:
        progress.close()
    for it, _status in results:
        print(it.path)
    skipped = sum(s == "skipped" for _, s in results)
    if skipped or world > 1:
        who = f"rank {rank}/{world}: " if world > 1 else ""
        print(f"{who}{len(results) - skipped} written, {skipped} already done", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.list_templates:
        from ..pipeline.templates import describe, load_templates  # noqa: PLC0415

        print(describe(load_templates(args.templates_file)))
        return 0
    from ..safety import PromptBlockedError  # noqa: PLC0415

    try:
        return _replay(args) if args.replay else _generate(args)
    except PromptBlockedError as e:  # refused by the content filter: exit 1 (bad input is 2)
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
