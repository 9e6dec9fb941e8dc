"""BitDance: autoregressive image generation with binary tokens."""

__version__ = "0.1.0"
