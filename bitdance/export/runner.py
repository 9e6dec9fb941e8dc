"""Reference runner on ONNX Runtime: the whole next-patch loop and the Euler–Maruyama head sampler in numpy.

It mirrors `bitdance.sampling.decode.generate_bits` + `BitDancePipeline.decode` step for step (same draw
order, same fp32 arithmetic), so with the same noise it makes the same bits as PyTorch and images within
1e-3 (see docs/quantization.md). All model math runs in onnxruntime + numpy; torch only draws the noise
when you ask for the pipeline's noise (`torch_noise`).

    runner = OnnxRunner("export/")
    out = runner.generate(runner.class_condition([3]), torch_noise([0]), num_sampling_steps=20)
    out.images  # (B, 3, H, W) float32 in about [-1, 1]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..generator.diffusion_head import T_EPS as HEAD_T_EPS
from ..sampling.solvers import T_END as SOLVER_T_END
from ..sampling.solvers import guidance_at
from .onnx_export import EXPORT_FORMAT, EXPORT_VERSION

Noise = Callable[[tuple[int, ...]], np.ndarray]  # randn(shape) -> float32 array
T_END = np.float32(SOLVER_T_END)
T_EPS = np.float32(HEAD_T_EPS)


def torch_noise(seeds: Sequence[int]) -> Noise:
    """Draws identical to the pipeline's `seed=` path (one torch.Generator per image, PerItemSource)."""
    import torch

    from ..core.random import PerItemSource

    src = PerItemSource([torch.Generator().manual_seed(int(s)) for s in seeds])
    return lambda shape: src.randn(shape).numpy()


def torch_decoder_noise(seeds: Sequence[int]) -> Noise:
    """Noise of a noise-injected decoder as the pipeline draws it (generator seed + 1, one per image)."""
    import torch

    gens = iter([torch.Generator().manual_seed(int(s) + 1) for s in seeds])
    return lambda shape: torch.randn(shape, generator=next(gens)).numpy()


def numpy_noise(seed: int) -> Noise:
    """Torch-free noise (different draws from torch, so different images for the same seed)."""
    rng = np.random.default_rng(seed)
    return lambda shape: rng.standard_normal(shape, dtype=np.float32)


def shift_time(t: np.ndarray, shift: float) -> np.ndarray:
    if shift == 1.0:
        return t
    inv = np.float32(1.0 / shift)
    safe = np.maximum(t, np.float32(1e-12))
    return np.where(t > 0, inv / (inv + (np.float32(1.0) / safe - np.float32(1.0))), np.float32(0)).astype(
        np.float32
    )


@dataclass
class RunnerOutput:
    bits: np.ndarray  # (B, d, h, w) ±1 float32
    images: np.ndarray | None  # (B, 3, H, W) float32, None when decode=False


class OnnxRunner:
    """Load an export folder (manifest.json, tables.npz, *.onnx) and generate with ONNX Runtime."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise ValueError("the ONNX runner needs onnxruntime: pip install 'bitdance[export]'") from None
        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: export a model first (bitdance export)")
        self.manifest = m = json.loads(path.read_text())
        if m.get("format") != EXPORT_FORMAT or m.get("version") != EXPORT_VERSION:
            raise ValueError(f"{path}: not a {EXPORT_FORMAT} v{EXPORT_VERSION} export")
        with np.load(self.folder / "tables.npz", allow_pickle=False) as t:
            self.tables = {k: t[k] for k in t.files}
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sessions = {
            name: ort.InferenceSession(str(self.folder / file), opts, providers=["CPUExecutionProvider"])
            for name, file in m["graphs"].items()
        }

    # ------------------------------------------------------------------ conditions
    def class_condition(self, labels: Sequence[int]) -> dict[str, np.ndarray]:
        n = self.manifest["num_classes"]
        if self.manifest["cond_type"] != "class":
            raise ValueError("this export is text-conditioned: pass text_condition(states, mask)")
        if not labels or any(not 0 <= int(c) < n for c in labels):
            raise ValueError(f"class labels must be in 0..{n - 1}")
        return {"labels": np.asarray(labels, dtype=np.int64)}

    def text_condition(self, states: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        m = self.manifest
        if m["cond_type"] != "text":
            raise ValueError("this export is class-conditional: pass class_condition(labels)")
        if (
            states.ndim != 3
            or states.shape[1:] != (m["text_len"], m["text_dim"])
            or mask.shape != states.shape[:2]
        ):
            raise ValueError(f"text states must be (B, {m['text_len']}, {m['text_dim']}) with a (B, L) mask")
        return {"states": states.astype(np.float32), "mask": mask.astype(bool)}

    def null_condition(self, batch: int) -> dict[str, np.ndarray]:
        m = self.manifest
        if m["cond_type"] == "class":
            return {"labels": np.full(batch, m["num_classes"], dtype=np.int64)}
        return {
            "states": np.zeros((batch, m["text_len"], m["text_dim"]), np.float32),
            "mask": np.zeros((batch, m["text_len"]), bool),
        }

    # ------------------------------------------------------------------ stages
    def _head(self, z: np.ndarray, t: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self.sessions["head"].run(None, {"z": z, "t": t, "cond": cond})[0]

    def _velocity(self, x: np.ndarray, t: np.float32, cond: np.ndarray, w: float) -> np.ndarray:
        n = x.shape[0]
        guided = cond.shape[0] == 2 * n
        xx = np.concatenate([x, x]) if guided else x
        x_hat = self._head(xx, np.full(xx.shape[0], t, np.float32), cond)
        v = (x_hat - xx) / max(np.float32(1) - t, T_EPS)
        return v[n:] + np.float32(w) * (v[:n] - v[n:]) if guided else v

    def _sample_patch(
        self, cond: np.ndarray, shape: tuple[int, ...], steps: int, w: float, noise: Noise, solver: str
    ) -> np.ndarray:
        # float64 then rounded; torch's float32 linspace may differ by 1 ulp (CPU-dependent vectorised fill)
        grid = np.linspace(0.0, SOLVER_T_END, steps + 1).astype(np.float32)
        grid = shift_time(grid, self.manifest["time_shift"])
        x = noise(shape).astype(np.float32)
        for k in range(steps):
            t, dt = grid[k], grid[k + 1] - grid[k]
            v = self._velocity(x, t, cond, w)
            if solver == "euler":
                x = x + v * dt
                continue
            drift = v + (np.float32(1) - t) * ((t * v - x) / (np.float32(1) - t))
            eps = noise(shape).astype(np.float32)
            x = x + drift * dt + np.sqrt(np.float32(2) * (np.float32(1) - t) * dt) * eps
        return x + self._velocity(x, T_END, cond, w) * np.float32(1 - SOLVER_T_END)

    def _backbone(self, x: np.ndarray, lo: int, hi: int, past: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {"x": x, "rope": self.tables["rope"][lo:hi], "groups": self.tables["groups"][lo:hi], **past}
        hidden, keys, values = self.sessions["backbone_step"].run(None, feeds)
        past["past_keys"], past["past_values"] = keys, values
        past["past_groups"] = self.tables["groups"][:hi]
        return hidden

    def decode(self, bits: np.ndarray, decoder_noise: Noise | None = None) -> np.ndarray:
        """bits (B, d, h, w) -> images (B, 3, H, W), one image at a time (as the pipeline does)."""
        out = []
        for i in range(bits.shape[0]):
            feeds = {"bits": bits[i : i + 1].astype(np.float32)}
            if self.manifest["gan_decoder"]:
                if decoder_noise is None:
                    raise ValueError("this tokenizer's decoder is noise-injected: pass decoder_noise")
                feeds["noise"] = decoder_noise(feeds["bits"].shape).astype(np.float32)
            out.append(self.sessions["decoder"].run(None, feeds)[0])
        return np.concatenate(out)

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        cond: dict[str, np.ndarray],
        noise: Noise,
        num_sampling_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_schedule: str | None = None,
        solver: str = "euler_maruyama",
        decode: bool = True,
        decoder_noise: Noise | None = None,
    ) -> RunnerOutput:
        """Sample bits (and decode images) for a batch of conditions, noise drawn in the pipeline's order."""
        m, tb = self.manifest, self.tables
        defaults = m.get("defaults", {})
        steps = (
            num_sampling_steps if num_sampling_steps is not None else defaults.get("num_sampling_steps", 20)
        )
        scale = guidance_scale if guidance_scale is not None else defaults.get("guidance_scale", 1.0)
        schedule = guidance_schedule or defaults.get("guidance_schedule", "constant")
        if not isinstance(steps, int) or not 1 <= steps <= 1000:
            raise ValueError(f"num_sampling_steps must be an integer in 1..1000, got {steps!r}")
        if solver not in ("euler_maruyama", "euler"):
            raise ValueError(f"unknown solver {solver!r}; allowed: ['euler', 'euler_maruyama']")
        p, d, (gh, gw) = m["parallel_num"], m["latent_bits"], m["grid"]
        b = len(next(iter(cond.values())))
        total = gh * gw // p
        guided = any(guidance_at(i, total, scale, schedule) != 1.0 for i in range(total))
        if guided:
            null = self.null_condition(b)
            cond = {k: np.concatenate([v, null[k]]) for k, v in cond.items()}
        rows = 2 * b if guided else b
        x0 = self.sessions["prefix"].run(None, cond)[0]
        first = x0.shape[1]
        n_layer, n_head, hd = m["n_layer"], m["n_head"], m["head_dim"]
        empty = np.zeros((n_layer, rows, n_head, 0, hd), np.float32)
        past = {"past_keys": empty, "past_values": empty, "past_groups": np.zeros(0, np.int64)}
        hidden = self._backbone(x0, 0, first, past)[:, -p:]
        out = np.empty((b, gh * gw, d), np.float32)
        for k in range(total):
            w = guidance_at(k, total, scale, schedule)
            cond_h = hidden + tb["head_pos"][k * p : (k + 1) * p][None]
            x = self._sample_patch(cond_h, (b, p, d), steps, w, noise, solver)
            bits = np.where(x > 0, np.float32(1), np.float32(-1))
            out[:, k * p : (k + 1) * p] = bits
            if k == total - 1:
                break
            feed = np.concatenate([bits, bits]) if guided else bits
            emb = self.sessions["embed_tokens"].run(None, {"bits": feed})[0]
            lo = first + k * p
            hidden = self._backbone(emb, lo, lo + p, past)
        raster = np.empty_like(out)
        raster[:, tb["order"]] = out
        bits_img = raster.transpose(0, 2, 1).reshape(b, d, gh, gw)
        images = self.decode(bits_img, decoder_noise) if decode else None
        return RunnerOutput(bits_img, images)
