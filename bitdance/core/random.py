"""Explicit sources of randomness: every random draw in sampling and training goes through one.

`GeneratorSource` wraps one `torch.Generator`; `PerItemSource` gives each batch item its own
generator so an item sampled alone equals the same item inside a batch; `ReplaySource` returns
recorded tensors in order (parity tests against recorded official draws).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RandomSource:
    """Interface: `randn(shape)` and `rand(shape)` return float32 tensors on `device`."""

    device: torch.device

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError


class GeneratorSource(RandomSource):
    def __init__(self, generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> None:
        self.generator = generator
        self.device = torch.device(generator.device if generator is not None else device)

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator, device=self.device)

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self.generator, device=self.device)


class PerItemSource(RandomSource):
    """Row r of a draw with shape[0] = k * B comes from generator r % B (batch-position independent)."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        if not generators:
            raise ValueError("PerItemSource needs at least one generator")
        self.generators = list(generators)
        self.device = torch.device(self.generators[0].device)

    def _draw(self, shape: Sequence[int], fn) -> torch.Tensor:  # noqa: ANN001
        b = len(self.generators)
        if shape[0] % b:
            raise ValueError(f"draw of {shape[0]} rows does not split over {b} per-item generators")
        reps = shape[0] // b
        per = [fn((reps, *shape[1:]), generator=g, device=self.device) for g in self.generators]
        return torch.stack(per, dim=1).reshape(tuple(shape))  # row j*b + i <- generator i

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        return self._draw(shape, torch.randn)

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        return self._draw(shape, torch.rand)


class ReplaySource(RandomSource):
    """Returns the given tensors in order, checking each requested shape."""

    def __init__(self, draws: Sequence[torch.Tensor], device: str | torch.device = "cpu") -> None:
        self.draws = list(draws)
        self.device = torch.device(device)
        self.used = 0

    def _next(self, shape: Sequence[int]) -> torch.Tensor:
        if self.used >= len(self.draws):
            raise RuntimeError(f"replay exhausted after {self.used} draws")
        t = self.draws[self.used]
        self.used += 1
        if tuple(t.shape) != tuple(shape):
            t = t.reshape(tuple(shape))
        return t.to(self.device, torch.float32)

    randn = _next
    rand = _next


def as_source(
    generator: torch.Generator | Sequence[torch.Generator] | RandomSource | None,
    device: str | torch.device = "cpu",
) -> RandomSource:
    """Normalise the accepted `generator=` forms into a RandomSource."""
    if isinstance(generator, RandomSource):
        return generator
    if generator is None or isinstance(generator, torch.Generator):
        return GeneratorSource(generator, device)
    return PerItemSource(list(generator))
