"""Training and fine-tuning: tokenizer and generator trainers, token extraction, LoRA, torchrun support.

Modules (imported lazily by the CLI; nothing heavy is imported here): `mixture` (data specs, resumable
sampler), `tokenizer_trainer`, `tokens` (extract-tokens, TokenStore), `generator_trainer`, `finetune`,
`lora` (`load_lora`), `loop` (`fit`), `checkpoints`, `optim`, `dist`, `progress`, `perceptual`, `gan`,
`throughput`, `cli` (`run_verb`). Guide: docs/training.md.
"""
