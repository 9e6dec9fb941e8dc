"""Run the official text-to-image model: Qwen3 backbone (transformers) + bounded diffusion head + tokenizer.

Decode loop (reference section 5.3): the conditional prompt and the unconditional prompt keep separate
KV caches. Each stream prefills its prompt causally except the last P slots ([res_W, query_1..P-1]),
which run with an all-ones mask (bidirectional, full cache). Per AR step the head samples the P bits
of the next patch from [h_c; h_u] + 2-D PE of the target cells (CFG on velocities, shared sample),
then `projector(bits) + PE` is fed to both streams with an all-ones mask.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..core.random import PerItemSource, RandomSource, as_source
from ..generator.patches import from_sequence
from ..sampling.solvers import euler_maruyama
from ..tokenizer.quantizer import binarize
from .memory import ModelOffloader, quantize_int8_weight_only
from .t2i_components import (
    COND_TEMPLATE,
    IMAGE_SIZE_LIST,
    UNCOND_PROMPT,
    VISION_START,
    T2IComponents,
    check_image_size,
    converted_image_sizes,
    image_positions,
    llm_folder,
    load_t2i_components,
    query_token,
    res_token,
)

StepCallback = Callable[[int, int], None]
INSTALL_HINT = (
    "the official T2I backbone needs `transformers` (pip install transformers; it does not need a new torch)"
)


def _transformers():  # noqa: ANN202
    try:
        import transformers
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return transformers


def resolve_dtype(device: torch.device, dtype: torch.dtype | str | None) -> torch.dtype:
    """Default bf16 on CUDA, fp32 elsewhere; bf16 on CPU is refused (~300x slower matmuls there)."""
    if isinstance(dtype, str):
        names = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }
        if dtype not in names:
            raise ValueError(f"unknown dtype {dtype!r}; allowed: {sorted(names)}")
        dtype = names[dtype]
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cpu" and dtype != torch.float32:
        raise ValueError("on CPU use float32 (bf16 matmul is ~300x slower there); bf16 is for CUDA")
    return dtype


class OfficialT2IPipeline:
    """Text -> images with an official BitDance T2I folder (or our converted copy of one)."""

    def __init__(
        self,
        components: T2IComponents,
        llm: torch.nn.Module | None = None,
        text_tokenizer: Any = None,
        image_sizes: tuple[tuple[int, int], ...] = IMAGE_SIZE_LIST,
        device: str | torch.device | None = None,
        offload: bool = False,
    ) -> None:
        self.components = components
        self.llm = llm
        self.text_tokenizer = text_tokenizer
        self.image_sizes = tuple(tuple(s) for s in image_sizes)
        self.device = (
            torch.device(device) if device is not None else next(components.head.parameters()).device
        )
        self.offloader = ModelOffloader(self.device, enabled=offload)
        if llm is not None:
            params = inspect.signature(llm.forward).parameters
            self._cache_kw = "cache" if "cache" in params else "past_key_values"
            hidden = llm.get_input_embeddings().weight.shape[1]
            if hidden != components.hidden:
                raise ValueError(f"LLM hidden size {hidden} != head condition width {components.hidden}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        int8: bool = False,
        offload: bool = False,
        image_sizes: tuple[tuple[int, int], ...] | None = None,
        int8_backend: str = "auto",
    ) -> OfficialT2IPipeline:
        """Load an official T2I folder (or a converted one). Nothing is downloaded.

        `int8`: int8 weight-only LLM and head linears; `offload`: keep components in host memory and
        move each to `device` only while it runs.
        """
        tf = _transformers()
        device = torch.device(device)
        dtype = resolve_dtype(device, dtype)
        comps = load_t2i_components(folder)
        llm_dir = llm_folder(folder)
        text_tokenizer = tf.AutoTokenizer.from_pretrained(str(llm_dir), local_files_only=True)
        try:
            llm = tf.Qwen3Model.from_pretrained(str(llm_dir), dtype=dtype, local_files_only=True)
        except TypeError:  # transformers < 4.56 names it torch_dtype
            llm = tf.Qwen3Model.from_pretrained(str(llm_dir), torch_dtype=dtype, local_files_only=True)
        llm.eval()
        for m in (comps.head, comps.projector, comps.tokenizer):
            m.to(dtype)
        if int8:
            quantize_int8_weight_only(llm, int8_backend)
            quantize_int8_weight_only(comps.head, int8_backend)
        if not offload:
            for m in (llm, comps.head, comps.projector, comps.tokenizer):
                m.to(device)
        sizes = image_sizes or converted_image_sizes(folder) or IMAGE_SIZE_LIST
        return cls(comps, llm, text_tokenizer, sizes, device, offload)

    # ------------------------------------------------------------------ prompt
    def _token_id(self, token: str) -> int:
        tok = self.text_tokenizer
        tid = tok.convert_tokens_to_ids(token)
        if tid is None or (tok.unk_token_id is not None and tid == tok.unk_token_id):
            raise ValueError(
                f"the text tokenizer has no special token {token!r}; is this a BitDance T2I folder?"
            )
        return int(tid)

    def prompt_ids(self, prompt: str, grid: tuple[int, int]) -> tuple[list[int], list[int]]:
        """Ids of the conditional and unconditional sequences, both ending in [res_H, res_W, queries]."""
        if self.text_tokenizer is None:
            raise ValueError("this pipeline has no text tokenizer / LLM (helpers only)")
        p = self.components.parallel_num
        suffix = [VISION_START, res_token(grid[0]), res_token(grid[1])] + [
            query_token(k) for k in range(1, p)
        ]
        tail = [self._token_id(t) for t in suffix]
        enc = self.text_tokenizer
        cond = enc(COND_TEMPLATE.format(prompt=prompt), add_special_tokens=False)["input_ids"]
        uncond = enc(UNCOND_PROMPT, add_special_tokens=False)["input_ids"]
        return list(cond) + tail, list(uncond) + tail

    # ------------------------------------------------------------------ backbone
    def _llm_forward(self, embeds: torch.Tensor, cache: Any, bidirectional: bool) -> torch.Tensor:
        llm = self.offloader.use(self.llm)
        n, l, _ = embeds.shape
        dtype = llm.get_input_embeddings().weight.dtype
        kwargs: dict[str, Any] = {
            "inputs_embeds": embeds.to(self.device, dtype),
            "use_cache": True,
            self._cache_kw: cache,
        }
        if bidirectional:  # the new block sees itself fully and the whole cache
            past = cache.get_seq_length()
            kwargs["attention_mask"] = torch.ones(n, 1, l, past + l, dtype=torch.bool, device=self.device)
        return llm(**kwargs).last_hidden_state

    def _prefill(self, ids: list[int], n: int) -> tuple[torch.Tensor, Any]:
        """Run one stream's prompt; returns (hidden at the P query slots (n, P, D), its KV cache)."""
        tf = _transformers()
        p = self.components.parallel_num
        llm = self.offloader.use(self.llm)
        emb = llm.get_input_embeddings()(torch.tensor([ids], device=self.device)).expand(n, -1, -1)
        cache = tf.DynamicCache()
        self._llm_forward(emb[:, :-p], cache, bidirectional=False)
        return self._llm_forward(emb[:, -p:], cache, bidirectional=True), cache

    # ------------------------------------------------------------------ head / projector (per AR step)
    def positions(self, grid: tuple[int, int]) -> torch.Tensor:
        """2-D sin-cos PE (N, D) of the grid in generation (patch) order."""
        return image_positions(grid, math.isqrt(self.components.parallel_num), self.components.hidden)

    def head_sample(
        self,
        h_c: torch.Tensor,
        h_u: torch.Tensor | None,
        pe_k: torch.Tensor,
        steps: int,
        guidance: float,
        rng: RandomSource,
    ) -> torch.Tensor:
        """Continuous sample (n, P, C) for one patch; `h_u` None = unguided."""
        head = self.offloader.use(self.components.head)
        dtype = head.net.cond_embed.bias.dtype  # a bias stays a plain tensor under int8 weight-only
        h = h_c if h_u is None else torch.cat([h_c, h_u])
        cond = (h.to(self.device).float() + pe_k.to(self.device).float()).to(dtype)
        shape = (h_c.shape[0], self.components.parallel_num, self.components.head_config.bits)
        return euler_maruyama(head.net, cond, shape, steps, guidance, rng, head.time_shift)

    def next_embeds(self, bits: torch.Tensor, pe_k: torch.Tensor) -> torch.Tensor:
        """LLM input embeddings of a sampled patch: projector(bits) + PE (n, P, D)."""
        proj = self.offloader.use(self.components.projector)
        out = proj(bits.to(self.device))
        return out + pe_k.to(out.device, out.dtype)

    # ------------------------------------------------------------------ generation
    def _check(self, prompt: str, steps: int, guidance: float, num_images: int) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
            raise ValueError(f"num_sampling_steps must be an integer in 1..1000, got {steps!r}")
        if (
            isinstance(guidance, bool)
            or not isinstance(guidance, (int, float))
            or not math.isfinite(guidance)
            or not 0 <= guidance <= 50
        ):
            raise ValueError(f"guidance_scale must be a finite number in [0, 50], got {guidance!r}")
        if isinstance(num_images, bool) or not isinstance(num_images, int) or not 1 <= num_images <= 64:
            raise ValueError(f"num_images must be an integer in 1..64, got {num_images!r}")
        if self.llm is None:
            raise ValueError("this pipeline has no LLM (helpers only); build it with from_folder")

    @torch.no_grad()
    def sample_bits(
        self,
        prompt: str,
        height: int = 1024,
        width: int = 1024,
        num_sampling_steps: int = 50,
        guidance_scale: float = 7.5,
        num_images: int = 1,
        seed: int = 1234,
        generator: torch.Generator | list[torch.Generator] | RandomSource | None = None,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """Bits (n, C, H/f, W/f). Image i uses seed + i unless `generator` is given.

        Guidance 1 runs the conditional stream only (no unconditional prompt pass).
        """
        self._check(prompt, num_sampling_steps, guidance_scale, num_images)
        comps = self.components
        p = comps.parallel_num
        grid = check_image_size(height, width, self.image_sizes, comps.tokenizer.downsample, p)
        n_tok = grid[0] * grid[1]
        n = num_images
        rng = (
            as_source(generator, self.device)
            if generator is not None
            else PerItemSource([torch.Generator(self.device).manual_seed(seed + i) for i in range(n)])
        )
        guided = guidance_scale != 1.0
        cond_ids, uncond_ids = self.prompt_ids(prompt, grid)
        h_c, cache_c = self._prefill(cond_ids, n)
        h_u, cache_u = self._prefill(uncond_ids, n) if guided else (None, None)
        pe = self.positions(grid)
        out = torch.empty(n, n_tok, comps.head_config.bits, device=self.device)
        total = n_tok // p
        for k in range(total):
            pe_k = pe[k * p : (k + 1) * p]
            bits = binarize(self.head_sample(h_c, h_u, pe_k, num_sampling_steps, guidance_scale, rng))
            out[:, k * p : (k + 1) * p] = bits
            if callback is not None:
                callback(k + 1, total)
            if k == total - 1:
                break
            emb = self.next_embeds(bits, pe_k)
            h_c = self._llm_forward(emb, cache_c, bidirectional=True)
            if guided:
                h_u = self._llm_forward(emb, cache_u, bidirectional=True)
        self.offloader.release()
        return from_sequence(out, grid, p)

    @torch.no_grad()
    def decode(
        self, bits: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Bits (n, C, h, w) -> images (n, 3, H, W) in about [-1, 1] (float32, not clamped)."""
        ae = self.offloader.use(self.components.tokenizer)
        dtype = ae.decoder.conv_in.weight.dtype
        noise = noise.to(self.device, dtype) if noise is not None else None
        images = ae.decode(bits.to(self.device, dtype), generator=generator, noise=noise).float()
        self.offloader.release()
        return images

    def gen_image(self, prompt: str, height: int = 1024, width: int = 1024, **kwargs: Any) -> torch.Tensor:
        """Decoded images (n, 3, H, W) in [-1, 1] (the official `gen_image` return value)."""
        seed = kwargs.get("seed", 1234)
        bits = self.sample_bits(prompt, height, width, **kwargs)
        gen = (
            torch.Generator(self.device).manual_seed(int(seed))
            if self.components.tokenizer.config.gan_decoder
            else None
        )
        return self.decode(bits, generator=gen)

    def generate(
        self,
        prompt: str,
        height: int = 1024,
        width: int = 1024,
        num_sampling_steps: int = 50,
        guidance_scale: float = 7.5,
        num_images: int = 1,
        seed: int = 1234,
    ) -> list[Any]:
        """PIL RGB images (the official `generate` API and defaults)."""
        from PIL import Image

        from ..pipeline import tensor_to_uint8

        images = self.gen_image(
            prompt,
            height,
            width,
            num_sampling_steps=num_sampling_steps,
            guidance_scale=guidance_scale,
            num_images=num_images,
            seed=seed,
        )
        return [Image.fromarray(a) for a in tensor_to_uint8(images)]


def load_official_t2i(folder: str | Path, **kwargs: Any) -> OfficialT2IPipeline:
    """Shorthand for `OfficialT2IPipeline.from_folder`."""
    return OfficialT2IPipeline.from_folder(folder, **kwargs)
