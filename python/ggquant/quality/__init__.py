"""What a quantization costs: KLD / perplexity evaluation against the baseline (as ``llama-perplexity
--kl-divergence``), importance matrices from a torch model, validation and diff of GGUF files.

torch/transformers (``pip install 'ggquant[eval]'``) and llama-cpp-python are imported only by the backend that
needs them.
"""

from __future__ import annotations

from .evaluator import Evaluator, evaluate
from .stats import EvalResult, compute_stats

__all__ = ["Evaluator", "EvalResult", "evaluate", "compute_stats"]
