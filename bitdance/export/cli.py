"""`bitdance export`: ONNX export of a pipeline, parity check, and image generation with the ONNX runner."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

BITS_MUST_MATCH = 1.0  # fraction of equal bits required by --check
IMAGE_TOL = 1e-3  # max abs image difference allowed by --check (images in [-1, 1])

EPILOG = """examples:
  bitdance export --model bitdance-mini -o mini-onnx --check
  bitdance export --run mini-onnx "a red sneaker" --seed 3 -o sneaker.png
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance export",
        description="Export a BitDance pipeline to ONNX, or generate with an export.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", nargs="?", help="prompt for --run with a text-to-image export")
    p.add_argument(
        "--model",
        default="bitdance-mini",
        help="shipped model name, pipeline folder, or random:<preset> (default: bitdance-mini)",
    )
    p.add_argument("-o", "--output", help="export folder (export) or PNG path (--run)")
    p.add_argument(
        "--parallel", type=int, help="tokens per AR step P baked into the export (default: model's)"
    )
    p.add_argument("--size", help="HEIGHTxWIDTH baked into the export (default: the model's native size)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument(
        "--check",
        action="store_true",
        help=f"after export, check the ONNX runner against PyTorch (image diff <= {IMAGE_TOL})",
    )
    p.add_argument(
        "--run", metavar="EXPORT_DIR", help="generate one image with the ONNX runner from this export"
    )
    p.add_argument(
        "--class", dest="class_label", type=int, help="class label for --run (class-conditional export)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed (default 0; torch's generator, as the pipeline)")
    p.add_argument("--steps", type=int, help="head sampling steps (default: the model's)")
    p.add_argument("--cfg", type=float, help="guidance scale (default: the model's)")
    return p


def _check_common(args: argparse.Namespace) -> None:
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ValueError(f"--steps must be an integer in 1..1000, got {args.steps}")
    if args.cfg is not None and not 0 <= args.cfg <= 50:
        raise ValueError(f"--cfg must be in [0, 50], got {args.cfg}")
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be in [0, 2^63), got {args.seed}")


def _runner_condition(runner: Any, prompt: str | None, label: int | None) -> dict[str, np.ndarray]:
    m = runner.manifest
    if m["cond_type"] == "class":
        if label is None or prompt is not None:
            raise ValueError(f"this export is class-conditional: pass --class N (0..{m['num_classes'] - 1})")
        return runner.class_condition([label])
    if not prompt or label is not None:
        raise ValueError("this export is text-to-image: pass a prompt")
    from ..generator.text_encoder import build_text_encoder, check_prompts

    spec = dict(m["text_encoder"] or {})
    encoder = build_text_encoder(spec.pop("name"), **{k: v for k, v in spec.items() if v is not None})
    c = encoder(check_prompts(prompt, 2000))
    return runner.text_condition(c.states.detach().numpy(), c.mask.numpy())


def parity(
    pipe: Any,
    folder: Path,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
) -> dict[str, float]:
    """One condition and seed through PyTorch and the ONNX runner: equal-bit fraction, image max abs diff."""
    from .runner import OnnxRunner, torch_decoder_noise, torch_noise

    runner = OnnxRunner(folder)
    cfg = pipe.generator.config
    m = runner.manifest
    kw: dict[str, Any] = {
        "num_sampling_steps": steps,
        "guidance_scale": guidance,
        "seed": seed,
        "output_type": "pt",
        "parallel_num": m["parallel_num"],
        "height": m["image_size"][0],
        "width": m["image_size"][1],
    }
    if cfg.cond_type == "class":
        ref = pipe(class_labels=[0], **kw)
        cond = runner.class_condition([0])
    else:
        ref = pipe(prompt=["a red sneaker"], **kw)
        c = pipe.encode_prompt(["a red sneaker"])
        cond = runner.text_condition(c.states.cpu().numpy(), c.mask.cpu().numpy())
    out = runner.generate(
        cond, torch_noise([seed]), steps, guidance, decoder_noise=torch_decoder_noise([seed])
    )
    return {
        "bits_equal": float((out.bits == ref.bits.cpu().numpy()).mean()),
        "image_max_abs_diff": float(np.abs(out.images - ref.images.cpu().numpy()).max()),
    }


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _check_common(args)
    if args.run:
        return _run(args)
    if args.prompt is not None or args.class_label is not None:
        raise ValueError("a prompt / --class is only used with --run")
    if not args.output:
        raise ValueError("give an export folder with -o")
    if not 7 <= args.opset <= 30:
        raise ValueError(f"--opset must be in 7..30, got {args.opset}")
    from ..commands.generate import parse_size
    from ..pipeline import BitDancePipeline
    from .onnx_export import export_onnx

    pipe = BitDancePipeline.from_pretrained(args.model)
    h, w = parse_size(args.size)
    size = None if h is None else (h, w)
    folder = export_onnx(pipe, args.output, args.parallel, size, args.opset, overwrite=args.force)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    print(f"{folder}: {', '.join(sorted(f.name for f in folder.iterdir()))} ({size:.2f} MiB)")
    if args.check:
        res = parity(pipe, folder, args.seed, args.steps, args.cfg)
        ok = res["bits_equal"] >= BITS_MUST_MATCH and res["image_max_abs_diff"] <= IMAGE_TOL
        print(
            f"check: bits equal {res['bits_equal']:.1%}, image max abs diff {res['image_max_abs_diff']:.2e} "
            f"({'ok' if ok else 'FAILED'}; tolerance: all bits, {IMAGE_TOL})"
        )
        return 0 if ok else 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..checkpoint import atomic_write_bytes
    from .runner import OnnxRunner, torch_decoder_noise, torch_noise

    if not args.output:
        raise ValueError("give the PNG path with -o")
    runner = OnnxRunner(args.run)
    cond = _runner_condition(runner, args.prompt, args.class_label)
    out = runner.generate(
        cond, torch_noise([args.seed]), args.steps, args.cfg, decoder_noise=torch_decoder_noise([args.seed])
    )
    import io

    from PIL import Image

    img = np.clip(127.5 * out.images[0] + 128.0, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    atomic_write_bytes(Path(args.output), buf.getvalue())
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
