"""Optional adversarial loss for the tokenizer: a PatchGAN discriminator, hinge losses and the
adaptive weight that balances the generator's GAN gradient against the reconstruction gradient at the
decoder's last layer (VQGAN recipe). Off by default; starts after a warm-up step count.

The discriminator uses GroupNorm instead of BatchNorm so data-parallel runs need no synchronised stats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) -> (B, 1, H', W') real/fake logits per patch (receptive field ~ 22 px at 3 layers)."""

    def __init__(self, ch: int = 64, n_layers: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for i in range(1, n_layers):
            stride = 2 if i < n_layers - 1 else 1
            c_next = min(ch * 2**i, ch * 8)
            layers += [
                nn.Conv2d(c, c_next, 4, stride, 1, bias=False),
                nn.GroupNorm(min(32, c_next // 4), c_next),
                nn.LeakyReLU(0.2),
            ]
            c = c_next
        layers += [nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()


def adaptive_weight(
    rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """||dL_rec/dW|| / (||dL_g/dW|| + 1e-4) at the decoder's last weight W, clamped to [0, max_weight]."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    w = rec_grad.norm() / (g_grad.norm() + 1e-4)
    return w.clamp(0.0, max_weight).detach()
