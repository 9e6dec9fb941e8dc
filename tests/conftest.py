import pytest
import torch

torch.set_num_threads(1)  # tiny models: one thread is fastest, and CI machines are shared


@pytest.fixture
def tiny_gen():
    from bitdance.configs import get_preset
    from bitdance.generator.transformer import BitDanceTransformer

    torch.manual_seed(0)
    return BitDanceTransformer(get_preset("generator", "tiny")).eval()


@pytest.fixture
def tiny_tok():
    from bitdance.configs import get_preset
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    torch.manual_seed(0)
    return BinaryAutoencoder(get_preset("tokenizer", "tiny")).eval()
