"""Converters: a Hugging Face checkpoint to a quantized GGUF file (:func:`convert`) or an MLX model
directory (:func:`convert_mlx`), through one pipeline.

The pipeline, one module per step::

    hf.checkpoint   tensors of safetensors / .bin / state dicts, read lazily (one reader for both ends)
    core            open_model: checkpoint + config + the one "already quantized" policy;
                    atomic_directory (progress lines: ggquant.progress)
    stream          run_pass: the tensor loop (read, quantize, write overlapped; many outputs per read)
    hf.archs        GGUF names, reshapes and metadata per architecture       (GGUF end only)
    plan            llama-quantize's per-tensor types for a preset           (GGUF end only)
    to_gguf         GGUFSource -> GGUF file(s): convert, convert_many, convert_source, hf_source
    to_mlx          checkpoint -> mlx_lm directory: convert_mlx

The command line (``ggquant convert``) lives in :mod:`ggquant.cli`. ``ggquant.convert`` is the
function :func:`convert` (public API), so import this package's modules with ``from ggquant.convert
import core`` or ``from ggquant.convert.core import run_pass`` (``import ggquant.convert.core as m``
stops at the function).

Extension points (add to them; the signatures below stay):

- **A ready-made plan** instead of a preset: pass a :class:`ggquant.plan.Plan` whose tensors are
  exactly the model's (names and shapes in order, as ``convert(..., dry_run=True).plan`` lists them)
  as ``preset=`` to :func:`convert`, or in :class:`GGUFOutput`. It is used as it is; the planning
  options (``tensor_types``, ``pure``, ...) are then ignored. A mismatch raises ``GGQuantError``.
- **Another tensor source** (e.g. a GGUF file to requantize): build a :class:`GGUFSource` — a list of
  :class:`ggquant.hf.archs.OutTensor` (GGUF name, shape, ``parts``: callables returning
  ``(values, safetensors dtype)``, one per expert for 3-D tensors), the
  :class:`ggquant.plan.ModelInfo`, and ``metadata(plan) -> [(key, value, vtype, subtype)]`` in write
  order — and call :func:`convert_source`. Values may be F32, F16, BF16 (uint16 bits) or F64;
  anything else (a quantized GGUF tensor) is dequantized by the source's part callables.
  ``GGUFSource.checkpoint`` is optional (a :class:`ggquant.hf.checkpoint.Checkpoint` built with
  ``Checkpoint.add`` gives file names in error messages).
- **Several outputs in one pass**: :func:`convert_source` takes a list of :class:`GGUFOutput` (one per
  preset or plan) and reads each source tensor once, quantizing it to every output
  (:func:`ggquant.convert.stream.run_pass` with one :class:`~ggquant.convert.core.Job` per output);
  ``TensorSink`` is all a writer must offer.

Example:
    >>> import ggquant
    >>> r = ggquant.convert("path/to/Llama-3.2-1B", "llama-q4_k_m.gguf", preset="Q4_K_M")  # doctest: +SKIP
    >>> print(r.format())                                                                    # doctest: +SKIP
"""

from __future__ import annotations

from ..progress import Progress
from .core import HFModel, Job, check_not_quantized, load_config, open_model
from .stream import run_pass
from .to_gguf import (
    SUPPORTED_ARCHITECTURES,
    ConversionResult,
    GGUFOutput,
    GGUFSource,
    convert,
    convert_many,
    convert_source,
    hf_source,
    load_imatrix,
)
from .to_mlx import MAX_SHARD_BYTES, MLXConversionResult, MLXTensorPlan, convert_mlx

__all__ = [
    "MAX_SHARD_BYTES",
    "SUPPORTED_ARCHITECTURES",
    "ConversionResult",
    "GGUFOutput",
    "GGUFSource",
    "HFModel",
    "Job",
    "MLXConversionResult",
    "MLXTensorPlan",
    "Progress",
    "check_not_quantized",
    "convert",
    "convert_many",
    "convert_mlx",
    "convert_source",
    "hf_source",
    "load_config",
    "load_imatrix",
    "open_model",
    "run_pass",
]
