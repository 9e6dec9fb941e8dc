"""Official BitDance checkpoints: declarative key maps, strict converters, config translation, T2I runner.

Entry points:
- `convert_main(argv)` (`bitdance convert`), `convert_tokenizer`, `convert_imagenet`, `convert_t2i_folder`
- `load_official_tokenizer`, `load_official_imagenet`, `load_t2i_components`
- `OfficialT2IPipeline` / `load_official_t2i` (needs `transformers`, imported lazily)
"""

from __future__ import annotations

from .cli import convert_main
from .keymaps import (
    IMAGENET_RULES,
    PROJECTOR_RULES,
    T2I_HEAD_RULES,
    TOKENIZER_RULES,
    CoverageReport,
    KeyRule,
    apply_key_map,
    export_key_map,
)
from .official_checkpoints import (
    ConversionReport,
    ConvertedImageNet,
    convert_imagenet,
    convert_tokenizer,
    load_official_imagenet,
    load_official_tokenizer,
    official_sampling_defaults,
    read_official_pt,
)
from .official_configs import (
    ConfigChoice,
    generator_config_from_args,
    generator_config_from_preset,
    generator_config_from_shapes,
    tokenizer_config_from_official,
    tokenizer_config_from_shapes,
)
from .t2i_components import (
    IMAGE_SIZE_LIST,
    MLPConnector,
    T2IComponents,
    T2IHeadConfig,
    convert_t2i_folder,
    image_positions,
    load_t2i_components,
)
from .t2i_runner import OfficialT2IPipeline, load_official_t2i

__all__ = [
    "IMAGENET_RULES",
    "IMAGE_SIZE_LIST",
    "PROJECTOR_RULES",
    "T2I_HEAD_RULES",
    "TOKENIZER_RULES",
    "ConfigChoice",
    "ConversionReport",
    "ConvertedImageNet",
    "CoverageReport",
    "KeyRule",
    "MLPConnector",
    "OfficialT2IPipeline",
    "T2IComponents",
    "T2IHeadConfig",
    "apply_key_map",
    "convert_imagenet",
    "convert_main",
    "convert_t2i_folder",
    "convert_tokenizer",
    "export_key_map",
    "generator_config_from_args",
    "generator_config_from_preset",
    "generator_config_from_shapes",
    "image_positions",
    "load_official_imagenet",
    "load_official_t2i",
    "load_official_tokenizer",
    "load_t2i_components",
    "official_sampling_defaults",
    "read_official_pt",
    "tokenizer_config_from_official",
    "tokenizer_config_from_shapes",
]
