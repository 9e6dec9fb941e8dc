"""Options shared by the training verbs: --config files, the common flags, and the run wrapper.

`training/cli.py` (tokenizer), `generator_trainer.py` (train), `finetune.py` and `tokens.py` (extract-tokens)
build their parsers from these; nothing here imports a verb module.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .loop import TrainingStopped

# ----------------------------------------------------------------------------- config files


def load_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                "YAML config files need PyYAML: pip install pyyaml (or use a .json config)"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {e}") from None
    elif p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not valid JSON: {e}") from None
    else:
        raise ValueError(f"config file {p} must end in .yaml, .yml or .json")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{p} must hold a mapping of option names to values")
    return data


def parse_with_config(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse argv; values from --config become defaults that explicit flags override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        data = load_config_file(known.config)
        dests = {a.dest: a for a in parser._actions}
        defaults = {}
        for key, value in data.items():
            dest = str(key).replace("-", "_")
            if dest not in dests or dest in ("help", "config"):
                allowed = sorted(d.replace("_", "-") for d in dests if d not in ("help", "config"))
                raise ValueError(f"{known.config}: unknown option {key!r}; allowed: {', '.join(allowed)}")
            action = dests[dest]
            if isinstance(value, list) and action.nargs is None:
                value = ",".join(str(v) for v in value)
            if isinstance(action, argparse._StoreTrueAction):
                if not isinstance(value, bool):
                    raise ValueError(f"{known.config}: option {key!r} must be true or false, got {value!r}")
            elif value is not None:
                if isinstance(value, (dict, bool)) and action.type is not None:
                    raise ValueError(f"{known.config}: option {key!r} has a bad value {value!r}")
                try:
                    value = action.type(value) if action.type is not None else str(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{known.config}: option {key!r} has a bad value {value!r}") from None
            if action.choices is not None and value not in action.choices:
                raise ValueError(
                    f"{known.config}: {key} must be one of {list(action.choices)}, got {value!r}"
                )
            defaults[dest] = value
        parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def require_options(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) in (None, "")]
    if missing:
        raise ValueError(
            f"missing required option(s) {', '.join(missing)} (on the command line or in --config)"
        )


# ----------------------------------------------------------------------------- shared flags


def add_common_options(p: argparse.ArgumentParser, lr: float, batch: int, steps: int) -> None:
    p.add_argument("--config", help="YAML/JSON file with any of these options (flags given here override it)")
    p.add_argument("--out", help="run folder: checkpoints/, export/, metrics.jsonl, samples/ (required)")
    p.add_argument("--steps", type=int, default=steps, help=f"optimizer steps in total (default {steps})")
    p.add_argument(
        "--batch-size",
        type=int,
        default=batch,
        help=f"GLOBAL batch per optimizer step, split over ranks and --grad-accum (default {batch})",
    )
    p.add_argument(
        "--grad-accum", type=int, default=1, help="gradient-accumulation micro-steps per step (default 1)"
    )
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate of AdamW (default {lr:g})")
    p.add_argument(
        "--min-lr-ratio", type=float, default=0.1, help="final LR as a fraction of --lr (cosine; default 0.1)"
    )
    p.add_argument("--warmup", type=int, default=100, help="linear LR warm-up steps (default 100)")
    p.add_argument(
        "--weight-decay", type=float, default=0.0, help="AdamW weight decay on matrices (default 0)"
    )
    p.add_argument("--beta1", type=float, default=0.9, help="AdamW beta1 (default 0.9)")
    p.add_argument("--beta2", type=float, default=0.95, help="AdamW beta2 (default 0.95)")
    p.add_argument(
        "--grad-clip", type=float, default=1.0, help="clip the global grad norm (0 = off; default 1.0)"
    )
    p.add_argument(
        "--ema-decay", type=float, default=0.999, help="EMA decay of the exported weights (default 0.999)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of init, data order and training noise (default 0)"
    )
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument(
        "--stop-at",
        type=int,
        help="stop after this step (checkpoint + export) while keeping the --steps LR schedule; "
        "continue later with --resume and a larger --stop-at (or none)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        help="stop (checkpoint + export) once this many seconds of training have run, counted across "
        "resumes; the --steps LR schedule is kept",
    )
    p.add_argument(
        "--log-every", type=int, default=10, help="steps between metrics.jsonl records (default 10)"
    )
    p.add_argument(
        "--ckpt-every",
        type=int,
        default=500,
        help="steps between checkpoints + export refresh (default 500; always at the end)",
    )
    p.add_argument(
        "--eval-every", type=int, default=0, help="steps between held-out evaluations (0 = at checkpoints)"
    )
    p.add_argument(
        "--sample-every", type=int, default=0, help="steps between sample/recon grids (0 = at checkpoints)"
    )
    p.add_argument("--keep-last", type=int, default=3, help="checkpoints to keep (default 3)")
    p.add_argument(
        "--fsdp", action="store_true", help="shard the model with FSDP2 under torchrun (big models)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar / progress lines")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def optim_config(args: argparse.Namespace) -> Any:
    from .optim import OptimConfig

    return OptimConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_accum=args.grad_accum,
        warmup=args.warmup,
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        beta1=args.beta1,
        beta2=args.beta2,
        grad_clip=args.grad_clip,
        ema_decay=args.ema_decay,
        seed=args.seed,
    )


def loop_config(args: argparse.Namespace) -> Any:
    from .loop import LoopConfig

    return LoopConfig(
        steps=args.steps,
        out=Path(args.out),
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        eval_every=args.eval_every,
        sample_every=args.sample_every,
        keep_last=args.keep_last,
        resume=args.resume,
        progress=not args.no_progress,
        stop_at=args.stop_at,
        time_budget_s=getattr(args, "time_budget", None),
    )


def set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)


def announce(
    kind: str, args: argparse.Namespace, model: Any, n_items: int, ctx: Any, extra: str = ""
) -> None:
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{kind}: {params / 1e6:.2f}M params, {n_items} training items, global batch {args.batch_size} "
        f"(world {ctx.world_size} x accum {args.grad_accum}), "
        f"{args.steps} steps on {ctx.device} {extra}".rstrip(),
        file=sys.stderr,
    )


def run_training(trainer: Any, loop: Any, ctx: Any) -> int:
    from .loop import fit

    try:
        summary = fit(trainer, loop, ctx)
    except TrainingStopped as e:
        if ctx.is_main:
            print(f"error: {e}", file=sys.stderr)
        return 1
    if ctx.is_main:
        print(
            f"done: step {summary['step']}, checkpoint {summary['checkpoint']}, export {summary['export']}",
            file=sys.stderr,
        )
    return 0
