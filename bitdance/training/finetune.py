"""`bitdance finetune`: adapt a trained pipeline to your captioned images, fully or with LoRA (peft).

Steps: encode the images with the pipeline's own tokenizer and text encoder (cached in ``<out>/tokens``),
then run the generator trainer starting from the pipeline's generator. Outputs:
- LoRA (``--lora-rank R``, default 8): ``<out>/adapter/`` (peft format + bitdance_adapter.json); apply it
  with ``bitdance.training.lora.load_lora(pipe, "<out>/adapter")``.
- full fine-tune (``--lora-rank 0``): a complete pipeline folder ``<out>/export/``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from .generator_trainer import GeneratorTrainer
from .lora import adapter_parameters, add_lora, generator_hash, save_adapter


class LoraGeneratorTrainer(GeneratorTrainer):
    """Generator trainer whose model is a peft.PeftModel; exports the adapter only."""

    base_hash: str = ""
    pipeline_folder: str = ""

    def ema_model(self) -> nn.Module:
        m = copy.deepcopy(self.model)
        self.ema.copy_to(m)
        return m.merge_and_unload().to(self.ctx.device).eval()

    def export(self, folder: Path) -> Path | None:
        if not self.ctx.is_main:
            return None
        m = copy.deepcopy(self.model).cpu()
        self.ema.copy_to(m)
        adapter = Path(folder).parent / "adapter"
        return save_adapter(m, adapter, self.base_hash, {"base_pipeline": self.pipeline_folder})


def finetune_parser() -> argparse.ArgumentParser:
    from .options import add_common_options

    p = argparse.ArgumentParser(
        prog="bitdance finetune",
        description="Fine-tune a BitDance pipeline on your images (LoRA or full).",
        epilog="example: bitdance finetune --model runs/gen/export --data folder:root=my_images "
        "--lora-rank 8 --steps 300 --out runs/ft",
    )
    p.add_argument("--model", help="pipeline folder (model_index.json + tokenizer/ + generator/) (required)")
    p.add_argument(
        "--data",
        help="dataset spec, e.g. folder:root=imgs or folder:root=imgs:manifest=imgs/m.jsonl "
        "(captions from the manifest, <stem>.txt sidecars or file names) (required)",
    )
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA rank; 0 = full fine-tune (default 8)")
    p.add_argument("--lora-alpha", type=float, help="LoRA alpha (default 2 x rank)")
    p.add_argument(
        "--lora-targets",
        help="regex of module names to adapt (default: backbone attention + MLP projections and text_proj)",
    )
    p.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the LoRA path (default 0)")
    p.add_argument("--parallel", help="comma list of P to train (default: the model's supported P)")
    p.add_argument("--sample-steps", type=int, help="saved default head steps (default: the model's)")
    p.add_argument("--cfg", type=float, help="saved default guidance (default: the model's)")
    add_common_options(p, lr=1e-4, batch=8, steps=300)
    p.set_defaults(warmup=10, ema_decay=0.0, ckpt_every=100, weight_decay=0.0)
    return p


def finetune_main(argv: list[str]) -> int:
    from ..checkpoint import from_pretrained
    from ..pipeline import INDEX_NAME, resolve_model
    from .dist import setup
    from .generator_trainer import parse_parallel
    from .options import (
        announce,
        loop_config,
        optim_config,
        parse_with_config,
        require_options,
        run_training,
        set_threads,
    )
    from .tokens import TokenStore, extract_tokens

    args = parse_with_config(finetune_parser(), argv)
    require_options(args, "model", "data", "out")
    set_threads(args)
    if args.lora_rank < 0:
        raise ValueError(f"--lora-rank must be >= 0 (0 = full fine-tune), got {args.lora_rank}")
    folder = resolve_model(args.model)
    index_path = folder / INDEX_NAME
    if not index_path.is_file():
        raise ValueError(f"{folder} is not a pipeline folder (no {INDEX_NAME})")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    generator = from_pretrained(folder / index.get("generator", "generator"))
    cfg = generator.config
    te = index.get("text_encoder") or {}
    optim, loop = optim_config(args), loop_config(args)
    ctx = setup(args.device)
    try:
        out = Path(args.out)
        tokens = out / "tokens"
        if ctx.is_main and not (tokens / "header.json").is_file():
            extract_tokens(
                folder / index.get("tokenizer", "tokenizer"),
                args.data,
                tokens,
                text_encoder=te.get("name", "none") if cfg.cond_type == "text" else "none",
                text_len=te.get("max_len", cfg.text_len),
                text_dim=te.get("dim"),
                batch_size=32,
                progress=not args.no_progress,
                overwrite=True,
            )
        ctx.barrier()
        store = TokenStore(tokens)
        parallel = parse_parallel(args.parallel)
        if parallel:
            bad = sorted(set(parallel) - set(cfg.supported_parallel))
            if bad:
                raise ValueError(
                    f"--parallel {bad} not supported by this model; allowed: {list(cfg.supported_parallel)}"
                )
            import dataclasses

            cfg = dataclasses.replace(cfg, parallel_nums=tuple(parallel))
        defaults = index.get("defaults") or {}
        sample_steps = args.sample_steps or defaults.get("num_sampling_steps", 20)
        sample_cfg = args.cfg if args.cfg is not None else defaults.get("guidance_scale", 3.0)
        base_hash = generator_hash(generator)
        state = generator.state_dict()
        common: dict[str, Any] = dict(
            fsdp=args.fsdp, init_state=state, sample_steps=sample_steps, sample_cfg=sample_cfg
        )
        if args.lora_rank > 0:

            def adapt(model: nn.Module) -> nn.Module:
                return add_lora(model, args.lora_rank, args.lora_alpha, args.lora_targets, args.lora_dropout)

            trainer: Any = LoraGeneratorTrainer(cfg, store, optim, ctx, adapt=adapt, **common)
            trainer.base_hash, trainer.pipeline_folder = base_hash, str(folder.resolve())
            if ctx.is_main:
                n_base = sum(p.numel() for p in generator.parameters())
                n_ad = adapter_parameters(trainer.model)
                print(
                    f"LoRA rank {args.lora_rank}: {n_ad} adapter parameters = "
                    f"{100 * n_ad / n_base:.2f}% of the {n_base} generator parameters",
                    file=sys.stderr,
                )
        else:
            trainer = GeneratorTrainer(cfg, store, optim, ctx, **common)
        if ctx.is_main:
            announce("finetune", args, trainer.model, len(store), ctx, extra=f"from {folder}")
        return run_training(trainer, loop, ctx)
    finally:
        ctx.close()
