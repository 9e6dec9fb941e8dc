"""Memory probe run in a fresh subprocess: load a pipeline folder, generate once, print RSS facts as JSON.

    bitdance memory-probe <folder> --batch 1 --steps 20

A fresh process gives a clean RSS: nothing else was loaded before. After loading, freed heap is handed
back to the OS (`malloc_trim`, both variants alike) and the kernel's peak-RSS counter is reset
(`/proc/self/clear_refs` = 5), so `peak_generate_mib` is the peak while generating.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bitdance memory-probe")
    p.add_argument("folder")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ..checkpoint import release_freed_memory
    from .model import load_pipeline

    mib = 1 / 1024
    rss_import = _status_kib("VmRSS")
    pipe = load_pipeline(args.folder)
    peak_load = _status_kib("VmHWM")  # per address space: starts clean at exec (unlike ru_maxrss)
    release_freed_memory()  # both variants alike: count live memory, not heap freed while loading
    rss_load = _status_kib("VmRSS")
    reset = _reset_peak()
    kw = (
        {"prompt": ["a red sneaker"] * args.batch}
        if pipe.generator.config.cond_type == "text"
        else {"class_labels": [i % pipe.generator.config.num_classes for i in range(args.batch)]}
    )
    start = time.perf_counter()
    pipe(**kw, num_sampling_steps=args.steps, output_type="np")
    seconds = time.perf_counter() - start
    peak_gen = _status_kib("VmHWM") if reset else None
    out = {
        "rss_after_import_mib": None if rss_import is None else round(rss_import * mib, 1),
        "rss_after_load_mib": None if rss_load is None else round(rss_load * mib, 1),
        "peak_generate_mib": None if peak_gen is None else round(peak_gen * mib, 1),
        "peak_load_mib": None if peak_load is None else round(peak_load * mib, 1),
        "seconds": round(seconds, 3),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
