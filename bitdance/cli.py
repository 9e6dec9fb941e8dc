"""`bitdance <verb>`: a thin dispatcher; each verb lives in its own module with `main(argv) -> int`."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

VERBS: dict[str, tuple[str, str]] = {
    "generate": ("bitdance.commands.generate", "generate images from prompts or class labels"),
    "inspect": ("bitdance.commands.inspect", "print the provenance metadata of a generated PNG"),
    "edit": ("bitdance.commands.edit", "inpaint / re-roll a region of an image"),
    "filter-check": ("bitdance.commands.filter_check", "run the content filter on a prompt"),
    "filter-train": ("bitdance.commands.filter_train", "build the content filter's semantic index"),
    "train-tokenizer": ("bitdance.training.cli", "train the binary tokenizer"),
    "extract-tokens": ("bitdance.training.cli", "encode a dataset to packed bits on disk"),
    "train": ("bitdance.training.cli", "train the next-patch generator"),
    "finetune": ("bitdance.training.cli", "fine-tune a model (full or LoRA) on your images"),
    "eval": ("bitdance.evaluation.cli", "evaluate tokenizer / generator quality and adherence"),
    "bench": ("bitdance.evaluation.cli", "speed benchmarks (and --vs-diffusion)"),
    "docs": ("bitdance.evaluation.results_docs", "build / check the docs' numbers from docs/results/*.json"),
    "quantize": ("bitdance.commands.quantize", "int8 quantization and its report"),
    "export": ("bitdance.export.cli", "ONNX export"),
    "convert": ("bitdance.convert.cli", "convert official BitDance checkpoints"),
    "serve": ("bitdance.server.cli", "HTTP API server and web page"),
    "suites": ("bitdance.evaluation.suites", "check the adherence scorers on ground-truth images"),
    "build-suites": ("bitdance.commands.build_suites", "build the template prompt suites (captioner)"),
    "build-freeform": ("bitdance.evaluation.freeform", "write the hand-written free-form prompt suite"),
    "scorer-heldout": ("bitdance.evaluation.heldout", "scorer accuracy on data never trained on"),
    "adherence-report": ("bitdance.evaluation.adherence_report", "adherence runs -> docs/results reports"),
    "train-classifier": ("bitdance.evaluation.train_classifier", "train the evaluation scorers' classifiers"),
    "train-baseline": ("bitdance.evaluation.baseline_cli", "train / sample the diffusion baseline"),
    "bench-training": ("bitdance.training.throughput", "training throughput (samples/s of full steps)"),
    "memory-probe": ("bitdance.quantization.probe", "peak memory of a load + generation (quantize --report)"),
}


def _usage() -> str:
    lines = ["usage: bitdance <verb> [options]   (bitdance <verb> --help for details)", "", "verbs:"]
    lines += [f"  {v:<16} {desc}" for v, (_, desc) in VERBS.items()]
    return "\n".join(lines)


def _default_threads() -> None:
    """Use one torch thread unless the user chose (OMP_NUM_THREADS / BITDANCE_THREADS).

    The CPU models here are small: their matmuls are latency-bound, and with a second thread on a
    busy machine OpenMP spin-waits made generation 20-50x slower (measured: 0.5 s vs 24.7 s per image
    for bitdance-mini with another process running). Verbs with a --threads flag still override this.
    """
    import os

    n = os.environ.get("BITDANCE_THREADS") or (None if "OMP_NUM_THREADS" in os.environ else "1")
    if n:
        import torch

        torch.set_num_threads(max(1, int(n)))


def _cli_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings on the command line read as one 'warning: ...' line (no source line)."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv_from_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"bitdance {__version__}")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"error: unknown verb {verb!r}; allowed: {', '.join(VERBS)}", file=sys.stderr)
        return 2
    module_name = VERBS[verb][0]
    _default_threads()
    warnings.formatwarning = _cli_warning
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("bitdance"):
            print(f"error: `bitdance {verb}` is not available in this version", file=sys.stderr)
        else:
            print(
                f"error: `bitdance {verb}` needs the optional package {e.name!r}; install it with pip",
                file=sys.stderr,
            )
        return 2
    runner = getattr(module, "run_verb", None)
    try:
        rc = int(runner(verb, rest) if runner else module.main(rest))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if argv_from_process and getattr(module, "EXIT_WITHOUT_TEARDOWN", False):
        _exit_now(rc)
    return rc


def _exit_now(rc: int) -> None:
    """End the process without interpreter teardown (freeing torch and the models: ~0.5 s on one CPU).

    Only for verbs that declare `EXIT_WITHOUT_TEARDOWN = True` (their outputs are complete, atomically
    written files) and only when run as the `bitdance` command, never when `main` is called in-process.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(rc)


if __name__ == "__main__":
    raise SystemExit(main())
