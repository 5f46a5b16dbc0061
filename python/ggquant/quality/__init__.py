"""What a quantization costs: KLD / perplexity evaluation against the baseline (as ``llama-perplexity
--kl-divergence``), importance matrices from a torch model, validation and diff of GGUF files.

torch/transformers (``pip install 'ggquant[eval]'``) and llama-cpp-python are imported only by the backend that
needs them.
"""

from __future__ import annotations

from .audit import DiffReport, ValidationReport, diff_gguf, validate
from .evaluator import Evaluator, evaluate
from .imatrix_torch import compute_imatrix, write_imatrix
from .stats import EvalResult, compute_stats

__all__ = ["Evaluator", "EvalResult", "evaluate", "compute_stats", "compute_imatrix", "write_imatrix", "validate",
           "diff_gguf", "ValidationReport", "DiffReport"]
