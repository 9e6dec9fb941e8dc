"""Dataclass configs per component and the PRESETS registry."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class _Config:
    """Mixin: dict round trip that rejects unknown fields with a clear message."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[arg-type]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # noqa: ANN206
        renamed = getattr(cls, "RENAMED", {})
        # config.json files written before a field was renamed keep loading under the new name
        data = {renamed.get(k, k) if renamed.get(k) not in data else k: v for k, v in data.items()}
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names - {"kind", "format_version"})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; allowed: {sorted(names)}")
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                v = data[f.name]
                kwargs[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kwargs)


@dataclass
class TokenizerConfig(_Config):
    """Binary autoencoder: conv encoder -> sign() per channel -> conv decoder with adaptive GroupNorm."""

    in_channels: int = 3
    out_channels: int = 3
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    # res blocks per decoder level and in the decoder's middle (None = num_res_blocks); more blocks can be
    # added to a trained decoder as exact identities (bitdance.tokenizer.deepen)
    decoder_res_blocks: int | None = None
    z_channels: int = 16  # bits per token d (vocabulary 2^d)
    norm_groups: int = 32
    gan_decoder: bool = False  # noise-injected decoder: fresh Gaussian noise concatenated to the code
    entropy_group_size: int = 8  # bits per group in the entropy loss (<= 10)
    entropy_temperature: float = 0.01
    image_size: int = 32  # nominal training resolution (any multiple of `downsample` works)

    def __post_init__(self) -> None:
        _check(len(self.ch_mult) >= 1, "ch_mult needs at least one level")
        _check(
            1 <= self.z_channels <= 256,
            f"z_channels (bits per token) must be in 1..256, got {self.z_channels}",
        )
        _check(
            1 <= self.entropy_group_size <= 10 and self.z_channels % self.entropy_group_size == 0,
            f"entropy_group_size must be in 1..10 and divide z_channels={self.z_channels}, "
            f"got {self.entropy_group_size}",
        )
        _check(self.num_res_blocks >= 1, f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        _check(
            self.decoder_res_blocks is None or self.decoder_res_blocks >= 1,
            f"decoder_res_blocks must be >= 1 (or null = num_res_blocks), got {self.decoder_res_blocks}",
        )
        widths = [self.ch] + [self.ch * m for m in self.ch_mult]
        bad = [w for w in widths if w % self.norm_groups]
        _check(not bad, f"all widths {widths} must be divisible by norm_groups={self.norm_groups}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def decoder_blocks(self) -> int:
        """Res blocks per decoder level (and in the decoder's middle)."""
        return self.num_res_blocks if self.decoder_res_blocks is None else self.decoder_res_blocks


@dataclass
class GeneratorConfig(_Config):
    """Next-patch autoregressive transformer + binary diffusion head."""

    RENAMED: ClassVar[dict[str, str]] = {"head_dim": "head_width", "head_head_dim": "head_attn_dim"}

    # token grid
    latent_bits: int = 16
    grid_size: tuple[int, int] = (4, 4)  # (h, w) tokens of the training resolution
    # backbone
    dim: int = 64
    n_layer: int = 2
    n_head: int = 2
    ffn_multiple_of: int = 256
    norm_eps: float = 1e-6
    rope_base: float = 10000.0
    local_window: int | None = None  # attend to the prefix + the last `local_window` patches only
    # conditioning prefix
    cond_type: str = "class"  # "class" | "text"
    num_classes: int = 10  # class index num_classes = null (unconditional) class
    cls_token_num: int = 4
    text_dim: int = 384
    text_len: int = 16
    # next-patch decoding
    parallel_num: int = 4  # default P (tokens per AR step)
    parallel_nums: tuple[int, ...] = ()  # supported P values (empty = only parallel_num)
    any_order: bool = False  # trained with random patch orders too (`bitdance train --any-order`)
    # diffusion head
    head_type: str = "attention"  # "mlp" (per token, P = 1 only) | "attention" (joint over the patch)
    head_width: int = 64  # hidden width of the diffusion head (was `head_dim`)
    head_depth: int = 2
    head_adaln_groups: int = 1
    head_attn_dim: int = 64  # size of one attention head inside the diffusion head (was `head_head_dim`)
    head_bounded: bool = False  # x-prediction passed through 2*sigmoid(.)-1 (official T2I head)
    head_pos: str = "learned"  # target-position embedding for the head: "learned" | "sincos"
    P_mean: float = -0.8
    P_std: float = 0.8
    time_shift: float = 1.0
    diff_batch_mul: int = 4
    # training-time regularisers
    perturb_rate: float = 0.1
    cond_dropout: float = 0.1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            self.cond_type in ("class", "text"),
            f"cond_type must be 'class' or 'text', got {self.cond_type!r}",
        )
        _check(self.dim % self.n_head == 0, f"dim {self.dim} must be divisible by n_head {self.n_head}")
        _check(
            (self.dim // self.n_head) % 4 == 0,
            "the attention head size dim/n_head must be divisible by 4 (2-D RoPE)",
        )
        _check(
            self.head_type in ("mlp", "attention"),
            f"head_type must be 'mlp' or 'attention', got {self.head_type!r}",
        )
        _check(
            self.head_pos in ("learned", "sincos"),
            f"head_pos must be 'learned' or 'sincos', got {self.head_pos!r}",
        )
        _check(
            self.head_depth % self.head_adaln_groups == 0,
            "head_depth must be a multiple of head_adaln_groups",
        )
        _check(
            self.head_type == "mlp" or self.head_width % self.head_attn_dim == 0,
            "head_width must be a multiple of head_attn_dim",
        )
        for p in self.supported_parallel:
            validate_parallel_num(p, self.grid_size)
        _check(
            self.head_type == "attention" or self.supported_parallel == (1,),
            "the per-token 'mlp' head only supports parallel_num 1; use head_type='attention'",
        )
        _check(
            self.local_window is None or self.local_window >= 1, "local_window must be None or >= 1 patches"
        )

    @property
    def supported_parallel(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.parallel_nums) | {self.parallel_num}))

    @property
    def max_parallel(self) -> int:
        return max(self.supported_parallel)

    @property
    def num_tokens(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def prefix_len(self) -> int:
        return self.cls_token_num if self.cond_type == "class" else self.text_len + 1

    @property
    def ffn_hidden(self) -> int:
        hidden = int(8 * self.dim / 3)
        return self.ffn_multiple_of * ((hidden + self.ffn_multiple_of - 1) // self.ffn_multiple_of)


def validate_parallel_num(p: int, grid: tuple[int, int]) -> int:
    """Check that P is a square p*p that tiles the (h, w) token grid; return p."""
    side = math.isqrt(p) if isinstance(p, int) and p > 0 else 0
    if side == 0 or side * side != p:
        raise ValueError(f"parallel_num must be a perfect square (1, 4, 16, 64, ...), got {p!r}")
    if grid[0] % side or grid[1] % side:
        raise ValueError(
            f"parallel_num {p} ({side}x{side} patches) does not tile the {grid[0]}x{grid[1]} token grid; "
            f"allowed: {[q * q for q in range(1, 9) if grid[0] % q == 0 and grid[1] % q == 0]}"
        )
    return side


# ----------------------------------------------------------------------------- presets

TOKENIZER_PRESETS: dict[str, TokenizerConfig] = {
    "tiny": TokenizerConfig(ch=32, ch_mult=(1, 1, 1), num_res_blocks=1, z_channels=16, image_size=16),
    # CPU default-model tokenizer: 32 px -> 4x4 tokens of 64 bits (8x down, 1 bit per pixel)
    "mini": TokenizerConfig(ch=32, ch_mult=(1, 2, 2, 4), num_res_blocks=1, z_channels=64, image_size=32),
    # official release (shapes from the reference report)
    "ae_d16c32": TokenizerConfig(
        ch=256, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=4, z_channels=32, image_size=256
    ),
    "ae_d32c128": TokenizerConfig(
        ch=128, ch_mult=(1, 1, 2, 2, 4, 8), num_res_blocks=4, z_channels=128, gan_decoder=True, image_size=256
    ),
    "ae_d32c256": TokenizerConfig(
        ch=128, ch_mult=(1, 1, 2, 2, 4, 8), num_res_blocks=4, z_channels=256, gan_decoder=True, image_size=256
    ),
}


def _official_imagenet(
    dim: int, layers: int, heads: int, head_depth: int, adaln: int, p: int
) -> GeneratorConfig:
    return GeneratorConfig(
        latent_bits=32,
        grid_size=(16, 16),
        dim=dim,
        n_layer=layers,
        n_head=heads,
        cond_type="class",
        num_classes=1000,
        cls_token_num=64,
        parallel_num=p,
        head_type="mlp" if p == 1 else "attention",
        head_width=dim,
        head_depth=head_depth,
        head_adaln_groups=adaln,
        diff_batch_mul=4,
        perturb_rate=0.1 if dim == 768 else 0.05,
    )


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    "tiny": GeneratorConfig(
        latent_bits=16,
        grid_size=(4, 4),
        dim=64,
        n_layer=2,
        n_head=2,
        ffn_multiple_of=64,
        cls_token_num=2,
        parallel_num=4,
        parallel_nums=(1, 4, 16),
        head_width=64,
        head_depth=2,
        head_adaln_groups=1,
        diff_batch_mul=2,
    ),
    "tiny-text": GeneratorConfig(
        latent_bits=16,
        grid_size=(4, 4),
        dim=64,
        n_layer=2,
        n_head=2,
        ffn_multiple_of=64,
        cond_type="text",
        text_dim=32,
        text_len=8,
        parallel_num=4,
        parallel_nums=(1, 4, 16),
        head_width=64,
        head_depth=2,
        diff_batch_mul=2,
    ),
    # CPU default model (bitdance-mini): text-conditioned, 32 px, 4x4 grid of 64-bit tokens, ~10.7M params
    "mini": GeneratorConfig(
        latent_bits=64,
        grid_size=(4, 4),
        dim=288,
        n_layer=8,
        n_head=4,
        ffn_multiple_of=64,
        cond_type="text",
        text_dim=384,
        text_len=20,  # MiniLM tokens incl. [CLS]/[SEP]: fits 99.99% of the template captions (12 cut 22%)
        parallel_num=4,
        parallel_nums=(1, 4, 16),
        head_width=256,
        head_depth=3,
        head_adaln_groups=1,
        diff_batch_mul=4,
    ),
    "BitDance-B-1x": _official_imagenet(768, 24, 12, 6, 2, 1),
    "BitDance-B-4x": _official_imagenet(768, 24, 12, 6, 2, 4),
    "BitDance-B-16x": _official_imagenet(768, 24, 12, 6, 2, 16),
    "BitDance-L-1x": _official_imagenet(1024, 32, 16, 8, 2, 1),
    "BitDance-H-1x": _official_imagenet(1280, 40, 20, 12, 3, 1),
}

PRESETS: dict[str, dict[str, Any]] = {"tokenizer": TOKENIZER_PRESETS, "generator": GENERATOR_PRESETS}


def get_preset(kind: str, name: str):  # noqa: ANN201
    """Return a copy of the named preset config of `kind` ('tokenizer' | 'generator')."""
    table = PRESETS.get(kind)
    if table is None:
        raise ValueError(f"unknown preset kind {kind!r}; allowed: {sorted(PRESETS)}")
    if name not in table:
        raise ValueError(f"unknown {kind} preset {name!r}; allowed: {sorted(table)}")
    return dataclasses.replace(table[name])
