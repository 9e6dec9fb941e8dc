"""Next-patch generator training on extracted tokens (`bitdance train`).

Per optimizer step: P is drawn uniformly from `--parallel` (seeded by (seed, step), identical on every
rank), so one model serves every listed P; with `--any-order F` a fraction F of the steps generates the
patches in a random order (seeded the same way), so that editing can feed every kept patch first; with
`--rich-captions F` a fraction F of the items gets a fresh caption from `bitdance.data.rich_captions`
(seeded by (seed, step, item)), encoded on the fly by the frozen text encoder; the teacher-forced loss
is `BitDanceTransformer.loss` (bit-flip perturbation and condition dropout inside). All its random draws
come from a `GlobalBatchSource`, so a run is identical for any split of the same global batch over ranks
and accumulation micro-steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from ..core.configs import GeneratorConfig, get_preset
from ..generator.transformer import LOSS_IMPLS, BitDanceTransformer, TextCondition, TransformerBlock
from .caption_cache import CaptionStateCache
from .dist import (
    DistContext,
    GlobalBatchSource,
    load_model_state,
    load_optim_state,
    load_rng_state,
    model_state,
    no_sync,
    optim_state,
    rng_state,
    wrap_model,
)
from .loop import NonFiniteLoss, Trainer
from .mixture import StepSampler
from .optim import EMA, OptimConfig, build_adamw, clip_grad_norm, ema_full_state, set_lr
from .tokens import TokenStore

TRAIN_IMPLS = LOSS_IMPLS  # `--train-impl`: "fast" = fused AdamW, cached caption states, trimmed loss


class LossModule(nn.Module):
    """Routes `BitDanceTransformer.loss` through `forward` so DDP/FSDP hooks see the call."""

    def __init__(self, model: BitDanceTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        bits: torch.Tensor,
        cond: torch.Tensor,
        mask: torch.Tensor | None,
        rng: Any,
        parallel_num: int,
        patch_perm: torch.Tensor | None = None,
        impl: str = "fast",
    ) -> torch.Tensor:
        c = TextCondition(cond, mask) if mask is not None else cond
        return self.model.loss(bits, c, rng, parallel_num=parallel_num, patch_perm=patch_perm, impl=impl)


def generator_config(
    preset: str, store: TokenStore, parallel: list[int] | None, overrides: dict[str, Any] | None = None
) -> GeneratorConfig:
    """Preset + `--parallel` + overrides, checked against the token folder's grid, bits and text states."""
    cfg = get_preset("generator", preset)
    changes = dict(overrides or {})
    if parallel:
        changes["parallel_nums"] = tuple(parallel)
        if cfg.parallel_num not in parallel and "parallel_num" not in changes:
            changes["parallel_num"] = max(parallel)
    if changes:
        fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
        bad = sorted(set(changes) - fields)
        if bad:
            raise ValueError(f"unknown generator config field(s) {bad}")
        cfg = dataclasses.replace(cfg, **changes)
        if parallel:
            cfg = dataclasses.replace(cfg, parallel_nums=tuple(sorted(set(parallel))))
        missing = sorted(set(cfg.supported_parallel) - set(parallel or cfg.supported_parallel))
        if missing and parallel:
            raise ValueError(f"default parallel_num {cfg.parallel_num} must be one of --parallel {parallel}")
    d, h, w = store.shape
    if (d, (h, w)) != (cfg.latent_bits, tuple(cfg.grid_size)):
        raise ValueError(
            f"tokens in {store.folder} are {h}x{w} tokens of {d} bits but generator preset {preset!r} "
            f"expects "
            f"{cfg.grid_size[0]}x{cfg.grid_size[1]} of {cfg.latent_bits}; pick a matching preset or tokenizer"
        )
    if cfg.cond_type == "text":
        te = store.text
        if not te:
            raise ValueError(
                f"preset {preset!r} is text-conditioned but {store.folder} has no cached text states; "
                "extract with --text-encoder minilm (or hash)"
            )
        if te["dim"] != cfg.text_dim or te["max_len"] != cfg.text_len:
            raise ValueError(
                f"cached text states are {te['max_len']} x {te['dim']} ({te['name']}) but the preset "
                f"needs text_len {cfg.text_len} x text_dim {cfg.text_dim}; re-extract with "
                f"--text-len {cfg.text_len} (and --text-dim for the hash encoder), or train with "
                f"--text-len {te['max_len']}"
            )
    else:
        labels = store.labels
        if labels.min() < 0 or labels.max() >= cfg.num_classes:
            raise ValueError(
                f"class-conditional preset {preset!r} needs labels in 0..{cfg.num_classes - 1}; "
                f"{store.folder} has labels in {labels.min()}..{labels.max()}"
            )
    return cfg


def parse_source_weights(text: str | None) -> dict[str, float]:
    """'emoji=2,fashion_mnist=0.5' -> {'emoji': 2.0, 'fashion_mnist': 0.5} (epoch weights per source)."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in str(text).split(","):
        name, sep, value = part.strip().partition("=")
        try:
            w = float(value) if sep and name else -1.0
        except ValueError:
            w = -1.0
        if not math.isfinite(w) or w < 0:
            raise ValueError(
                "--source-weights takes name=weight pairs with weights >= 0, such as "
                f"emoji=2,fashion_mnist=0.5; got {part.strip()!r}"
            )
        out[name.strip()] = w
    return out


def source_layout(store: TokenStore, weights: dict[str, float]) -> tuple[list[int], list[float] | None]:
    """Item counts per contiguous source run of the token folder and their sampling weights."""
    if not weights:
        return [len(store)], None
    sources = list(store.header.get("sources") or [])
    unknown = sorted(set(weights) - set(sources))
    if unknown:
        raise ValueError(f"--source-weights names {unknown}, but {store.folder} holds sources {sources}")
    ids = np.load(store.folder / "source_ids.npy")
    if len(ids) != len(store) or (len(ids) > 1 and np.any(np.diff(ids) < 0)):
        raise ValueError(f"{store.folder}/source_ids.npy is not in source order; re-extract the tokens")
    counts = np.bincount(ids, minlength=len(sources)).tolist()
    sizes = [int(n) for n in counts if n]
    ws = [weights.get(sources[k], 1.0) for k, n in enumerate(counts) if n]
    if sum(w * n for w, n in zip(ws, sizes)) < 1:
        raise ValueError("--source-weights select no items; give some source a weight > 0")
    return sizes, ws


class GeneratorTrainer(Trainer):
    def __init__(
        self,
        cfg: GeneratorConfig,
        store: TokenStore,
        opt: OptimConfig,
        ctx: DistContext,
        eval_store: TokenStore | None = None,
        fsdp: bool = False,
        init_state: dict | None = None,
        sample_steps: int = 20,
        sample_cfg: float = 3.0,
        adapt: Any = None,
        source_weights: dict[str, float] | None = None,
        tokenizer_path: str | None = None,
        any_order: float = 0.0,
        rich_captions: float = 0.0,
        train_impl: str = "fast",
    ) -> None:
        if not 0 <= any_order <= 1 or not 0 <= rich_captions <= 1:
            raise ValueError("--any-order and --rich-captions are fractions in [0, 1]")
        if train_impl not in TRAIN_IMPLS:
            raise ValueError(f"--train-impl must be one of {list(TRAIN_IMPLS)}, got {train_impl!r}")
        self.train_impl = train_impl
        self._caption_cache: CaptionStateCache | None = None
        if rich_captions > 0 and (cfg.cond_type != "text" or store.meta is None or not store.text):
            raise ValueError(
                f"--rich-captions needs a text model and a token folder with meta.json and text states "
                f"({store.folder} was extracted before meta.json existed: re-run `bitdance extract-tokens`)"
            )
        self.any_order, self.rich_captions = float(any_order), float(rich_captions)
        self._text_encoder: Any = None
        self.tokenizer_path = tokenizer_path  # None: the tokenizer that made the tokens
        self.cfg, self.store, self.eval_store, self.opt_cfg, self.ctx = cfg, store, eval_store, opt, ctx
        self.micro = opt.micro_batch(ctx.world_size)
        self.global_batch = opt.batch_size
        self.sample_steps, self.sample_cfg = sample_steps, sample_cfg
        torch.manual_seed(opt.seed)
        self.model = BitDanceTransformer(cfg).to(ctx.device)
        if init_state is not None:
            from ..checkpoint import load_into

            load_into(self.model, init_state, source="--init weights")
        if adapt is not None:  # e.g. LoRA: returns a wrapper whose trainable parameters are the adapter's
            self.model = adapt(self.model).to(ctx.device)
        # a P = 1 step leaves the query tokens unused
        unused = 1 in cfg.supported_parallel and cfg.max_parallel > 1
        self.wrapped = wrap_model(
            LossModule(self.model), ctx, fsdp, block_types=(TransformerBlock,), find_unused=unused
        )
        self.ema = EMA(self.model, opt.ema_decay)  # after wrapping: FSDP2 turns parameters into DTensors
        self.optimizer = build_adamw(
            self.model, opt.lr, opt.weight_decay, (opt.beta1, opt.beta2), fused=self._fused_adamw()
        )
        sizes, weights = source_layout(store, source_weights or {})
        self.sampler = StepSampler(sizes, weights, opt.batch_size, opt.seed)
        self.train_gen = torch.Generator().manual_seed(opt.seed + 1)
        self._tokenizer = None

    def _fused_adamw(self) -> bool | None:
        """Fused AdamW on the fast path where torch has the kernel (CPU, CUDA); torch's pick otherwise."""
        return True if self.train_impl == "fast" and self.ctx.device.type in ("cpu", "cuda") else None

    def epoch(self, step: int) -> float:
        return self.sampler.epoch_of(step)

    def parallel_for(self, step: int) -> int:
        choices = self.cfg.supported_parallel
        return random.Random(f"bitdance/parallel/{self.opt_cfg.seed}/{step}").choice(choices)

    def patch_perm_for(self, step: int, p: int) -> torch.Tensor | None:
        """The step's patch order (K,) with `--any-order`, or None for the default order."""
        k = self.cfg.num_tokens // p
        r = random.Random(f"bitdance/any-order/{self.opt_cfg.seed}/{step}")
        if k < 2 or self.any_order <= 0 or r.random() >= self.any_order:
            return None
        perm = list(range(k))
        r.shuffle(perm)
        return torch.tensor(perm, dtype=torch.long)

    def captions_for(self, idx: list[int], step: int, chunk: int) -> list[str]:
        """The stored caption of each item, or (fraction `--rich-captions`) a fresh rich caption."""
        from ..data.rich_captions import RICH_SOURCES, rich_caption

        store = self.store
        sources = store.header.get("sources", [])
        out = []
        for i, j in enumerate(idx):
            r = random.Random(f"bitdance/rich-caption/{self.opt_cfg.seed}/{step}/{chunk}/{i}")
            src = sources[int(store.source_ids[j])] if sources else ""
            if src in RICH_SOURCES and r.random() < self.rich_captions:
                out.append(rich_caption(src, store.meta[j], r))  # type: ignore[index]
            else:
                out.append(store.captions[int(store.caption_ids[j])])
        return out

    def encode_captions(self, captions: list[str]) -> TextCondition:
        if self._text_encoder is None:
            from .tokens import build_encoder

            spec = self.store.text
            self._text_encoder = build_encoder(spec["name"], self.cfg.text_len, None).eval()
        if self.train_impl == "fast":  # each distinct caption encoded once per run (frozen encoder)
            if self._caption_cache is None:
                self._caption_cache = CaptionStateCache(self._text_encoder)
            return self._caption_cache(captions)
        with torch.no_grad():
            c = self._text_encoder(captions)
        return TextCondition(c.states.float(), c.mask)

    def _condition(
        self, store: TokenStore, idx: list[int], step: int | None = None, chunk: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        dev = self.ctx.device
        if self.cfg.cond_type == "text" and step is not None and self.rich_captions > 0:
            c = self.encode_captions(self.captions_for(idx, step, chunk))
            return c.states.to(dev), c.mask.to(dev)
        if self.cfg.cond_type == "text":
            c = store.batch_text(idx, self.cfg.text_len)
            return c.states.to(dev), c.mask.to(dev)
        return store.batch_labels(idx).to(dev), None

    def train_step(self, step: int) -> dict[str, float]:
        oc, ctx = self.opt_cfg, self.ctx
        self.model.train()
        p = self.parallel_for(step)
        perm = self.patch_perm_for(step, p)
        n_tokens = self.cfg.num_tokens
        rng = GlobalBatchSource(
            self.train_gen,
            self.micro,
            0,
            oc.grad_accum * ctx.world_size,
            layouts={(n_tokens // p) * self.cfg.diff_batch_mul: (self.cfg.diff_batch_mul, n_tokens // p)},
        )
        rng.new_step()
        self.optimizer.zero_grad(set_to_none=True)
        total, bad = 0.0, False
        n_chunks = oc.grad_accum * ctx.world_size
        for a in range(oc.grad_accum):
            chunk = a * ctx.world_size + ctx.rank
            rng.start_micro_step(chunk)
            with record_function("train/data"):
                idx = self.sampler.batch(step, chunk, n_chunks)
                bits = self.store.batch_bits(idx).to(ctx.device)
                cond, mask = self._condition(self.store, idx, step, chunk)
            with no_sync(self.wrapped, a < oc.grad_accum - 1):
                with record_function("train/forward"):
                    loss = self.wrapped(bits, cond, mask, rng, p, perm, self.train_impl)
                with record_function("train/backward"):
                    (loss / oc.grad_accum).backward()
            bad |= not bool(torch.isfinite(loss.detach()))
            total += float(loss.detach()) / oc.grad_accum
        if ctx.any_true(bad):
            raise NonFiniteLoss(f"generator loss is {total} at step {step + 1} (P={p})")
        lr = oc.lr_at(step)
        set_lr(self.optimizer, lr)
        with record_function("train/clip"):
            gnorm = clip_grad_norm(self.model.parameters(), oc.grad_clip)
        with record_function("train/optimizer"):
            self.optimizer.step()
        with record_function("train/ema"):
            self.ema.update(self.model)
        return {
            "loss": ctx.all_mean(total),
            f"loss_p{p}": ctx.all_mean(total),
            "parallel": float(p),
            "lr": lr,
            "grad_norm": gnorm,
        }

    # ------------------------------------------------------------------ eval / samples / export
    def ema_model(self) -> BitDanceTransformer:
        m = BitDanceTransformer(self.cfg)
        m.load_state_dict(ema_full_state(self.ema, self.model, m))
        return m.to(self.ctx.device).eval()

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        """Held-out teacher-forced loss per P (EMA weights, eval mode: no flips/dropout, fixed noise)."""
        if self.eval_store is None:
            return {}
        model = self.ema_model()  # collective under FSDP: every rank builds it
        if not self.ctx.is_main:
            return {}
        from ..core.random import GeneratorSource

        n = min(256, len(self.eval_store))
        idx = torch.linspace(0, len(self.eval_store) - 1, n).round().long().tolist()
        out = {}
        for p in self.cfg.supported_parallel:
            g = torch.Generator().manual_seed(1234)
            losses = []
            for i in range(0, n, 64):
                part = idx[i : i + 64]
                bits = self.eval_store.batch_bits(part).to(self.ctx.device)
                cond, mask = self._condition(self.eval_store, part)
                c = TextCondition(cond, mask) if mask is not None else cond
                losses.append(float(model.loss(bits, c, GeneratorSource(g), parallel_num=p)) * len(part))
            out[f"eval_loss_p{p}"] = sum(losses) / n
        return out

    def tokenizer(self) -> torch.nn.Module:
        if self._tokenizer is None:
            from ..checkpoint import from_pretrained

            path = self.tokenizer_path or self.store.header["tokenizer"]["path"]
            if not Path(path).is_dir():
                raise ValueError(
                    f"the tokenizer used for {self.store.folder} ({path}) is gone; export needs it"
                )
            self._tokenizer = from_pretrained(path, device=self.ctx.device)
        return self._tokenizer

    @torch.no_grad()
    def save_samples(self, step: int, folder: Path) -> Path | None:
        """8 data conditions (cached states/labels) x 2 seeds at the default P, --sample-steps and --cfg."""
        model = self.ema_model()  # collective under FSDP
        if not self.ctx.is_main:
            return None
        from ..sampling.decode import SamplingOptions, generate_bits
        from .progress import save_grid

        tok = self.tokenizer()
        n = min(8, len(self.store))
        idx = torch.linspace(0, len(self.store) - 1, n).round().long().tolist() * 2
        cond, mask = self._condition(self.store, idx)
        c = TextCondition(cond, mask) if mask is not None else cond
        gens = [torch.Generator(device=self.ctx.device).manual_seed(s) for s in range(len(idx))]
        opts = SamplingOptions(
            parallel_num=self.cfg.parallel_num,
            num_sampling_steps=self.sample_steps,
            guidance_scale=self.sample_cfg,
        )
        bits = generate_bits(model, c, opts, gens)
        real = tok.decode(self.store.batch_bits(idx[:n]).to(self.ctx.device))
        images = tok.decode(bits).clamp(-1, 1)
        path = save_grid(
            torch.cat([real.clamp(-1, 1), images]), Path(folder) / f"samples-{step:06d}.png", ncol=n
        )
        caps = [self.store.captions[self.store.caption_ids[i]] for i in idx[:n]]
        (Path(folder) / f"samples-{step:06d}.txt").write_text(
            "row 1: data (tokenizer round trip); rows 2-3: samples for the same conditions\n"
            + "\n".join(caps)
            + "\n",
            encoding="utf-8",
        )
        return path

    def export(self, folder: Path) -> Path | None:
        from ..generator.text_encoder import MiniLMTextEncoder, build_text_encoder
        from ..pipeline import BitDancePipeline

        generator = self.ema_model().cpu()  # collective under FSDP
        if not self.ctx.is_main:
            return None
        te = getattr(self, "_text_encoder", None)
        spec = self.store.text
        if te is None and self.cfg.cond_type == "text" and spec:
            if spec["name"] == "minilm":
                te = MiniLMTextEncoder(max_len=self.cfg.text_len)
            else:
                te = build_text_encoder(spec["name"], dim=spec["dim"], max_len=spec["max_len"])
            self._text_encoder = te  # loaded once per run (only its name/max_len are written)
        defaults = {
            "num_sampling_steps": self.sample_steps,
            "guidance_scale": self.sample_cfg,
            "parallel_num": self.cfg.parallel_num,
        }
        pipe = BitDancePipeline(
            self.tokenizer().cpu(),
            generator,
            te,
            defaults=defaults,
            name=Path(folder).parent.name,
        )
        self._tokenizer = None
        return pipe.save_pretrained(folder)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "generator",
            "config": self.cfg.to_dict(),
            "optim_config": self.opt_cfg.to_dict(),
            "model": {k.removeprefix("model."): v for k, v in model_state(self.wrapped).items()},
            "ema": self.ema.state_dict(),
            "optimizer": optim_state(self.wrapped, self.optimizer),
            "rng": rng_state(self.train_gen),
            "tokens": str(self.store.folder),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "generator":
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} run, not a generator run")
        if state["config"] != self.cfg.to_dict():
            raise ValueError(
                "checkpoint was made with a different generator config (preset/--parallel); use the "
                "same options or a new --out"
            )
        load_model_state(self.wrapped, {f"model.{k}": v for k, v in state["model"].items()})
        self.ema.load_state_dict(state["ema"])
        load_optim_state(self.wrapped, self.optimizer, state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the saving run's kernel choice
            group["fused"], group["foreach"] = self._fused_adamw(), None
            for prm in group["params"]:
                st = self.optimizer.state.get(prm, {})
                if torch.is_tensor(st.get("step")):  # fused AdamW keeps the step count beside the weight
                    st["step"] = st["step"].to(prm.device, torch.float32)
        load_rng_state(state["rng"], self.train_gen)


# ----------------------------------------------------------------------------- CLI


def train_parser() -> argparse.ArgumentParser:
    from .options import add_common_options

    p = argparse.ArgumentParser(
        prog="bitdance train",
        description="Train the next-patch generator on extracted tokens.",
        epilog="example: bitdance train --tokens runs/tokens --preset mini --parallel 1,4,16 --steps 20000 "
        "--batch-size 64 --lr 3e-4 --out runs/gen --sample-steps 20 --cfg 3.0",
    )
    p.add_argument("--tokens", help="token folder from `bitdance extract-tokens` (required)")
    p.add_argument("--eval-tokens", help="held-out token folder (extract with --split test) for eval losses")
    p.add_argument(
        "--preset", default="mini", help="generator preset: tiny, tiny-text, mini, ... (default mini)"
    )
    p.add_argument(
        "--parallel",
        help="comma list of P (tokens per AR step) to train, e.g. 1,4,16 (default: the preset's)",
    )
    p.add_argument(
        "--default-parallel",
        type=int,
        help="P used by the exported pipeline (default: preset's if listed, else the largest)",
    )
    p.add_argument("--perturb-rate", type=float, help="bit-flip rate of the inputs (default: preset's, 0.1)")
    p.add_argument("--cond-dropout", type=float, help="condition dropout for CFG (default: preset's, 0.1)")
    p.add_argument("--init", help="start from a pipeline folder (its generator weights; config must match)")
    p.add_argument(
        "--text-len",
        type=int,
        help="text tokens in the prefix (default: the preset's); must match the token folder's cached states",
    )
    p.add_argument(
        "--source-weights",
        help="epoch weight per source of the token folder, e.g. emoji=2,fashion_mnist=0.5 (default 1 each)",
    )
    p.add_argument(
        "--tokenizer",
        help="tokenizer folder for samples and the exported pipeline (default: the one that made the "
        "tokens); it must have that one's encoder, e.g. a decoder-only fine-tune (train-tokenizer "
        "--freeze-encoder)",
    )
    p.add_argument(
        "--sample-steps", type=int, default=20, help="head sampling steps saved as the default (20)"
    )
    p.add_argument("--cfg", type=float, default=3.0, help="guidance scale saved as the default (3.0)")
    p.add_argument(
        "--any-order",
        type=float,
        default=0.0,
        help="fraction of steps that generate the patches in a random order (default 0: patch order); "
        "makes edit method kept_first see every kept patch",
    )
    p.add_argument(
        "--rich-captions",
        type=float,
        default=0.0,
        help="fraction of items captioned afresh each step by the rich captioner (default 0: the stored "
        "caption); needs a token folder with meta.json",
    )
    p.add_argument(
        "--train-impl",
        default="fast",
        choices=list(TRAIN_IMPLS),
        help="how a step is computed: fast (default: fused AdamW, cached caption states, no work on "
        "outputs the loss drops) or reference (the first implementation); the same loss either way",
    )
    add_common_options(p, lr=3e-4, batch=64, steps=10000)
    return p


def parse_parallel(text: str | None) -> list[int] | None:
    if text is None or text == "":
        return None
    try:
        vals = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(
            f"--parallel must be a comma list of integers such as 1,4,16; got {text!r}"
        ) from None
    if not vals:
        raise ValueError("--parallel is empty")
    return vals


def load_init_generator(path: str) -> dict[str, torch.Tensor]:
    from ..checkpoint import load_weights

    folder = Path(path)
    for cand in (folder / "generator" / "model.safetensors", folder / "model.safetensors"):
        if cand.is_file():
            return load_weights(cand)
    raise FileNotFoundError(f"--init {path}: no generator/model.safetensors or model.safetensors there")


def train_main(argv: list[str]) -> int:
    from .dist import setup
    from .options import (
        announce,
        loop_config,
        optim_config,
        parse_with_config,
        require_options,
        run_training,
        set_threads,
    )

    args = parse_with_config(train_parser(), argv)
    require_options(args, "tokens", "out")
    set_threads(args)
    store = TokenStore(args.tokens)
    eval_store = TokenStore(args.eval_tokens) if args.eval_tokens else None
    overrides: dict[str, Any] = {}
    if args.default_parallel is not None:
        overrides["parallel_num"] = args.default_parallel
    if args.text_len is not None:
        if not 1 <= args.text_len <= 512:
            raise ValueError(f"--text-len must be in 1..512, got {args.text_len}")
        overrides["text_len"] = args.text_len
    if args.any_order > 0:
        overrides["any_order"] = True
    source_weights = parse_source_weights(args.source_weights)
    for name in ("perturb_rate", "cond_dropout"):
        v = getattr(args, name)
        if v is not None:
            if not 0 <= v <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {v}")
            overrides[name] = v
    cfg = generator_config(args.preset, store, parse_parallel(args.parallel), overrides)
    if not 1 <= args.sample_steps <= 1000:
        raise ValueError(f"--sample-steps must be in 1..1000, got {args.sample_steps}")
    if not 0 <= args.cfg <= 50:
        raise ValueError(f"--cfg must be in [0, 50], got {args.cfg}")
    optim, loop = optim_config(args), loop_config(args)
    init = load_init_generator(args.init) if args.init else None
    if args.tokenizer:
        from .tokenizer_match import check_tokenizer_for_tokens

        warning = check_tokenizer_for_tokens(store.header, str(store.folder), args.tokenizer)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    ctx = setup(args.device)
    try:
        trainer = GeneratorTrainer(
            cfg,
            store,
            optim,
            ctx,
            eval_store=eval_store,
            fsdp=args.fsdp,
            init_state=init,
            sample_steps=args.sample_steps,
            sample_cfg=args.cfg,
            source_weights=source_weights,
            tokenizer_path=args.tokenizer,
            any_order=args.any_order,
            rich_captions=args.rich_captions,
            train_impl=args.train_impl,
        )
        if ctx.is_main:
            announce(
                "generator",
                args,
                trainer.model,
                len(store),
                ctx,
                extra=f"P in {list(cfg.supported_parallel)}"
                + (
                    f", {len(trainer.sampler.epoch_indices(0))} items per epoch with --source-weights"
                    if source_weights
                    else ""
                ),
            )
        return run_training(trainer, loop, ctx)
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(train_main(sys.argv[1:]))
