"""An image's pixels do not depend on the memory layout of the batch its bits came in."""

import pytest
import torch

from bitdance.pipeline import BitDancePipeline, models_dir

SHIPPED = models_dir() / "bitdance-mini"


@pytest.mark.skipif(not (SHIPPED / "model_index.json").is_file(), reason="bitdance-mini not shipped")
def test_decode_of_a_channels_last_batch_equals_decode_alone():
    torch.set_num_threads(1)
    pipe = BitDancePipeline.from_pretrained("bitdance-mini")
    g = torch.Generator().manual_seed(0)
    for seed in range(4):
        bits = torch.where(torch.rand(3, 64, 4, 4, generator=g) > 0.5, 1.0, -1.0)
        batch = bits.contiguous(memory_format=torch.channels_last)  # the generator's output layout
        together = pipe.decode(batch, [seed] * 3)
        for i in range(3):
            alone = pipe.decode(bits[i : i + 1].clone(), [seed])
            assert torch.equal(together[i : i + 1], alone), (seed, i)
