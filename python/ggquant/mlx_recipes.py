"""Which tensors of a checkpoint an MLX conversion quantizes, and to what: one rule per conversion.

:func:`mlx_recipe` turns the user's choice into an :class:`MLXRecipe`; the converter asks it, per
tensor, for ``(mode, bits, group_size)`` or ``None`` (kept in its dtype), and for the
``quantization`` section of config.json. Three rules, named as the two tools name them:

``ollama`` (``-q int4``, ``int8``, ``nvfp4``, ``mxfp4``, ``mxfp8``: the names ``ollama create --quantize`` takes)
    What Ollama's MLX importer writes (``x/create``): group 64 for int4/int8, the token embedding,
    norms, biases, routing gates, vision towers and tensors under 1024 elements kept in their
    dtype, ``lm_head`` at 8 bits, and for int4 (and, except MoE experts, nvfp4/mxfp4) the
    ``k_proj``, ``v_proj`` and ``down_proj`` matrices at 8 bits (int8, or mxfp8 for the fp4 modes).
    These names are Ollama's (``mlx_lm.convert`` has none), so they mean what Ollama makes of them.
``uniform`` (``affine``, ``mlx:<mode>``, or any ``bits``/``group_size``: ``mlx_lm.convert -q``)
    One mode, bits and group size for every Linear/Embedding matrix, as ``mlx_lm.convert
    --q-mode M --q-bits B --q-group-size G`` (defaults as MLX's: affine 4 bits, group 64);
    ``"mlx:int4"`` is :func:`ggquant.quantize`'s ``"int4"`` (affine 4/32) on every matrix.
``mlx_lm:<recipe>`` (``quant_predicate="mixed_3_4"``, ``mixed_2_6``, ``mixed_3_6``, ``mixed_4_6``)
    ``mlx_lm.convert --quant-predicate``: low bits everywhere, high bits for ``lm_head`` and for
    ``v_proj``/``down_proj`` in the first and last eighth of the layers and every third between
    (llama.cpp's Q4_K_M choice), each layer recorded in config.json as mlx_lm records it.

Per-tensor entries in config.json are keyed by module path (the tensor name less ``.weight``), which
is mlx_lm's path for the architectures whose ``sanitize`` keeps the checkpoint's names (Llama,
Mistral, Qwen2/3, ...). Ollama's rule is its default policy (the architectures Ollama gives a policy
of their own are refused), applied per tensor: Ollama judges MoE experts after stacking them, which
changes only its "under 1024 elements" test.

Example:
    >>> from ggquant.mlx_recipes import mlx_recipe
    >>> r = mlx_recipe("int4", config={"num_hidden_layers": 2}, names=["model.layers.0.mlp.down_proj.weight"])
    >>> r.kind, r.tensor("model.layers.0.mlp.down_proj.weight", (64, 128), "BF16")
    ('ollama:int4', TensorQuant(mode='affine', bits=8, group_size=64))
    >>> r.tensor("model.layers.0.mlp.up_proj.weight", (128, 64), "BF16")
    TensorQuant(mode='affine', bits=4, group_size=64)
    >>> r.tensor("model.embed_tokens.weight", (256, 64), "BF16") is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import mlx as _mlx
from .errors import FormatError, GGQuantError

#: safetensors dtype -> MLX kernel code: the float dtypes MLX quantizes from.
KERNEL_CODES = {"F32": "f32", "F16": "f16", "BF16": "bf16"}

#: ``mlx_lm.convert --quant-predicate`` recipes: name -> (low bits, high bits) (mlx_lm/convert.py,
#: ``mixed_quant_predicate_builder``, mlx-lm 0.32).
MLX_LM_RECIPES: dict[str, tuple[int, int]] = {
    "mixed_2_6": (2, 6), "mixed_3_4": (3, 4), "mixed_3_6": (3, 6), "mixed_4_6": (4, 6),
}  # fmt: skip

#: Ollama's quantization types: name -> (mode, bits, group size). ollama/ollama x/quant/quant.go,
#: ``byType`` (commit fb30760, 2026-08; int4 went from group 32 to 64 in 2026-03).
OLLAMA_TYPES: dict[str, tuple[str, int, int]] = {
    "int4": ("affine", 4, 64), "int8": ("affine", 8, 64), "nvfp4": ("nvfp4", 4, 16),
    "mxfp4": ("mxfp4", 4, 32), "mxfp8": ("mxfp8", 8, 32),
}  # fmt: skip
# x/quant/quant.go Canonical: the aliases `ollama create --quantize` also takes
_OLLAMA_ALIASES = {"q4": "int4", "fp4": "int4", "q8": "int8", "fp8": "int8"}

# Architectures Ollama's x/create gives a policy of their own (create.go, tensorImportTransformRegistry);
# only its default policy is reproduced here.
_OLLAMA_OWN_POLICY = frozenset({
    "Qwen3_5ForCausalLM", "Qwen3_5ForConditionalGeneration", "Qwen3NextForCausalLM",
    "Qwen3NextForConditionalGeneration", "Qwen3_5MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration",
    "Qwen3NextMoeForCausalLM", "Qwen3NextMoeForConditionalGeneration", "Gemma4ForCausalLM",
    "Gemma4ForConditionalGeneration", "Gemma4UnifiedForCausalLM", "Gemma4UnifiedForConditionalGeneration",
    "LagunaForCausalLM", "MuseGlimmerForConditionalGeneration", "Cohere2MoeForCausalLM",
    "Gemma4AssistantForCausalLM", "Gemma4UnifiedAssistantForCausalLM", "NemotronH_Nano_VL_V2",
    "NemotronH_Nano_Omni_Reasoning_V3", "NemotronHForCausalLM",
})  # fmt: skip


class TensorQuant(NamedTuple):
    """How one tensor is quantized: the arguments of ``mlx.core.quantize``."""

    mode: str
    bits: int
    group_size: int


def _mlx_lm_quantizable(name: str, shape: tuple[int, ...], dtype: str, group_size: int) -> bool:
    """The matrices mlx_lm quantizes: Linear/Embedding weights (2-D, not norms) whose rows split into groups."""
    return (
        name.endswith(".weight")
        and len(shape) == 2
        and dtype in KERNEL_CODES
        and shape[-1] % group_size == 0
        and "norm" not in name.rsplit(".", 2)[-2]
    )


# --- Ollama's default policy: ollama/ollama x/create/create.go GetTensorQuantization (with ShouldQuantize,
# isStackedExpertWeight, isRoutingGate, isAligned) and x/create/quantpolicy.go (eightBit, isVision) ---


def _ollama_stacked_expert(name: str) -> bool:
    if name.endswith((".bias", ".scale", ".qbias")):
        return False
    return any(s in name for s in (".experts.", ".mlp.switch_mlp.", ".mlp.shared_experts.", ".mixer.shared_experts."))


def _ollama_should_quantize(name: str) -> bool:
    skip = ("audio_tower", "embed_audio", "embed", "norm", "ln_", "layernorm")
    return not any(s in name for s in skip) and not name.endswith(".bias") and name.endswith(".weight")


def _ollama_routing_gate(name: str) -> bool:
    gates = (".mlp.gate.weight", ".mixer.gate.weight", ".shared_expert_gate.weight", ".router.proj.weight")
    return name.endswith(gates)


def _ollama_aligned(shape: tuple[int, ...], qtype: str) -> bool:
    return bool(shape) and shape[-1] % OLLAMA_TYPES[qtype][2] == 0


def _ollama_type(name: str, shape: tuple[int, ...], base: str) -> str | None:
    """Ollama's quantization type for a tensor, or None (source precision)."""
    stacked = _ollama_stacked_expert(name)
    if not stacked and not _ollama_should_quantize(name):
        return None
    if not (len(shape) == 2 or (len(shape) == 3 and stacked)) or math.prod(shape) < 1024:
        return None
    if _ollama_routing_gate(name):
        return None
    eight = "int8" if base in ("int4", "int8") else "mxfp8"
    if name.endswith("lm_head.weight"):  # too sensitive for 4 bits: the 8-bit type of the family
        return eight if _ollama_aligned(shape, eight) else None
    if "vision" in name or "visual" in name or not _ollama_aligned(shape, base):
        return None
    # k/v/down at 8 bits; the fp4 modes leave MoE experts alone (their kernels take one mode)
    promote = base == "int4" or (base in ("nvfp4", "mxfp4") and not stacked)
    if promote and any(s in name for s in (".v_proj", ".k_proj", "down_proj")) and _ollama_aligned(shape, eight):
        return eight
    return base


@dataclass(frozen=True)
class MLXRecipe:
    """The per-tensor quantization rule of one MLX conversion (build it with :func:`mlx_recipe`).

    Attributes:
        kind: ``"uniform"``, ``"ollama:<type>"`` or ``"mlx_lm:<recipe>"``.
        mode, bits, group_size: config.json's top-level ``quantization`` section (the default).
        entry_group: the group size written in per-layer entries of an mlx_lm recipe (mlx_lm writes
            its ``q_group_size`` argument, ``None`` when it was not given).
        low_bits, high_bits, num_layers, layer_location: an mlx_lm recipe's parameters: its bit
            widths, the model's layer count and which dotted component of a path is the layer index.
    """

    kind: str
    mode: str
    bits: int
    group_size: int
    entry_group: int | None = None
    low_bits: int = 0
    high_bits: int = 0
    num_layers: int = 0
    layer_location: int = 0

    def tensor(self, name: str, shape: tuple[int, ...], dtype: str) -> TensorQuant | None:
        """How to quantize the tensor ``name`` (its shape and safetensors dtype), or None to keep it.

        Args:
            name: the checkpoint's tensor name.
            shape: its shape.
            dtype: its safetensors dtype after any dtype conversion (``"BF16"``, ...).

        Returns:
            A :class:`TensorQuant`, or None.

        Raises:
            FormatError: an mlx_lm recipe finds no layer index where it expects one.

        Example:
            >>> r = mlx_recipe("affine", bits=8)
            >>> r.tensor("model.layers.0.mlp.up_proj.weight", (128, 64), "F16")
            TensorQuant(mode='affine', bits=8, group_size=64)
            >>> r.tensor("model.norm.weight", (64,), "F16") is None
            True
        """
        if self.kind.startswith("ollama:"):
            if not name.endswith(".weight") or dtype not in KERNEL_CODES:  # NAME.weight -> NAME.scales
                return None
            t = _ollama_type(name, shape, self.kind[len("ollama:"):])
            return None if t is None else TensorQuant(*OLLAMA_TYPES[t])
        if not _mlx_lm_quantizable(name, shape, dtype, self.group_size):
            return None
        if self.kind == "uniform":
            return TensorQuant(self.mode, self.bits, self.group_size)
        return TensorQuant(self.mode, self._mixed_bits(name[: -len(".weight")]), self.group_size)

    def _mixed_bits(self, path: str) -> int:
        # mlx_lm/convert.py mixed_quant_predicate: the layer index sits at one dotted position
        parts = path.split(".")
        try:
            index = int(parts[self.layer_location]) if len(parts) > self.layer_location else 0
        except ValueError:
            raise FormatError(
                f"tensor {path + '.weight'!r}: {self.kind} expects a layer index at position "
                f"{self.layer_location} of the name, found {parts[self.layer_location]!r}"
            ) from None
        n = self.num_layers
        more = index < n // 8 or index >= 7 * n // 8 or (index - n // 8) % 3 == 2
        if more and any(s in path for s in ("v_proj", "v_a_proj", "v_b_proj", "down_proj")):
            return self.high_bits
        return self.high_bits if "lm_head" in path else self.low_bits

    def quantization(self, tensors: Iterable[tuple[str, TensorQuant | None]]) -> dict[str, Any]:
        """config.json's ``quantization`` section for the tensors' choices.

        Args:
            tensors: ``(tensor name, choice)`` pairs (what :meth:`tensor` returned).

        Returns:
            ``{"group_size", "bits", "mode"}``, plus, except for ``uniform``, one
            ``module path -> {"group_size", "bits", "mode"}`` entry per quantized tensor (the
            entries mlx_lm's loader reads to rebuild each layer).

        Example:
            >>> mlx_recipe("mlx:int4").quantization([("lm_head.weight", TensorQuant("affine", 4, 32))])
            {'group_size': 32, 'bits': 4, 'mode': 'affine'}
        """
        out: dict[str, Any] = {"group_size": self.group_size, "bits": self.bits, "mode": self.mode}
        if self.kind == "uniform":
            return out
        for name, q in tensors:
            if q is not None:
                gs = self.entry_group if self.kind.startswith("mlx_lm:") else q.group_size
                out[name[: -len(".weight")]] = {"group_size": gs, "bits": q.bits, "mode": q.mode}
        return out


def layer_quant(
    section: Mapping[str, Any], path: str, weight_shape: tuple[int, ...], scales_shape: tuple[int, ...]
) -> TensorQuant:
    """How config.json's ``quantization`` section says the layer ``path`` is quantized (the reading
    side of :meth:`MLXRecipe.quantization`).

    Args:
        section: the ``quantization`` section.
        path: the module path (tensor name less ``.weight``); an entry keyed without the leading
            ``model.`` (mlx_lm's path for some architectures) also counts.
        weight_shape, scales_shape: the stored codes' and scales' shapes.

    Returns:
        The layer's :class:`TensorQuant`: its own entry's, else the section's defaults. A
        ``"group_size": null`` (what mlx_lm's recipes write unless given one) is read from the shapes.

    Example:
        >>> section = {"group_size": 64, "bits": 4, "lm_head": {"group_size": None, "bits": 6}}
        >>> layer_quant(section, "lm_head", (8, 48), (8, 2))
        TensorQuant(mode='affine', bits=6, group_size=128)
        >>> layer_quant(section, "model.embed_tokens", (8, 16), (8, 2))
        TensorQuant(mode='affine', bits=4, group_size=64)
    """
    entry = section.get(path, section.get(path.removeprefix("model."), section))
    entry = entry if isinstance(entry, Mapping) else section  # a module entry may be False: not quantized
    bits = int(entry.get("bits", section.get("bits", 4)))
    group = entry.get("group_size") or weight_shape[-1] * 32 // bits // scales_shape[-1]
    return TensorQuant(str(entry.get("mode", section.get("mode", "affine"))), bits, int(group))


def is_mlx_quant(name: str) -> bool:
    """Whether ``name`` is a ``quant`` :func:`mlx_recipe` takes (an Ollama type or alias, an MLX mode or preset).

    Example:
        >>> is_mlx_quant("int4"), is_mlx_quant("Q4"), is_mlx_quant("mlx:nvfp4"), is_mlx_quant("Q4_K_M")
        (True, True, True, False)
    """
    key = str(name).strip().lower()
    return key in OLLAMA_TYPES or key in _OLLAMA_ALIASES or _mlx.is_mlx_type(key)


def _check(mode: str, bits: int, group_size: int) -> None:
    _mlx.quantize(np.zeros((1, group_size), np.float32), mode, bits, group_size)  # the kernels validate


def _mixed_layout(recipe: str, config: Mapping[str, Any], names: Iterable[str]) -> tuple[int, int]:
    """(layer count, position of the layer index) as mlx_lm's mixed_quant_predicate_builder finds them."""
    down = sorted(n for n in names if "down_proj" in n)
    if not down:
        raise FormatError(f"quant_predicate {recipe!r}: the model has no down_proj tensor (mlx_lm: "
                          "'Model does not have expected keys for mixed quant')")  # fmt: skip
    location = next((i for i, p in enumerate(down[0].split(".")) if p.isdigit()), len(down[0].split(".")) - 1)
    text = config.get("text_config") or {}
    layers = config.get("num_hidden_layers", text.get("num_hidden_layers"))
    if not isinstance(layers, int) or layers <= 0:
        raise FormatError(f"quant_predicate {recipe!r}: config.json has no num_hidden_layers")
    return layers, location


def mlx_recipe(
    quant: str | None = None,
    bits: int | None = None,
    group_size: int | None = None,
    quant_predicate: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    names: Iterable[str] = (),
) -> MLXRecipe:
    """The per-tensor rule for an MLX conversion (see the module docstring for the three rules).

    Args:
        quant: an Ollama type (``"int4"``, ``"int8"``, ``"nvfp4"``, ``"mxfp4"``, ``"mxfp8"``; also
            Ollama's aliases ``q4``/``fp4``/``q8``/``fp8``), ``"affine"``, ``"mlx:<mode or preset>"``
            (uniform), or None: ``"int4"``, or ``"affine"`` when ``bits``, ``group_size`` or
            ``quant_predicate`` is given (as ``mlx_lm.convert -q``).
        bits, group_size: mlx_lm's ``--q-bits`` / ``--q-group-size`` (not with an Ollama type, whose
            layout is fixed).
        quant_predicate: an mlx_lm recipe (``"mixed_3_4"``, ``"mixed_2_6"``, ``"mixed_3_6"``,
            ``"mixed_4_6"``); affine mode only, as in mlx_lm.
        config: the model's config.json (the layer count for a recipe; the architecture for Ollama's).
        names: the checkpoint's tensor names (where a recipe finds the layer index).

    Returns:
        An :class:`MLXRecipe`.

    Raises:
        UnsupportedTypeError: an unknown mode or preset.
        GGQuantError: an unknown recipe, a combination the tools do not offer, or bits/group size
            the kernels refuse.
        FormatError: a model the rule cannot be applied to.

    Example:
        >>> mlx_recipe("int4").group_size, mlx_recipe("mlx:int4").group_size, mlx_recipe(bits=8).kind
        (64, 32, 'uniform')
        >>> mlx_recipe(quant_predicate="mixed_3_4", config={"num_hidden_layers": 8},
        ...            names=["model.layers.0.mlp.down_proj.weight"]).tensor("lm_head.weight", (256, 64), "BF16")
        TensorQuant(mode='affine', bits=4, group_size=64)
    """
    config = config or {}
    mlx_lm_args = bits is not None or group_size is not None or quant_predicate is not None
    key = ("affine" if mlx_lm_args else "int4") if quant is None else str(quant).strip().lower()
    key = _OLLAMA_ALIASES.get(key, key)
    if key in OLLAMA_TYPES:
        if mlx_lm_args:
            raise GGQuantError(
                f"{quant!r} is Ollama's type (fixed bits, group size and per-tensor rule); bits, group_size and "
                f"quant_predicate are mlx_lm.convert's: use 'affine' (or 'mlx:{key}') with them"
            )
        arch = (config.get("architectures") or [""])[0]
        if arch in _OLLAMA_OWN_POLICY:
            raise FormatError(
                f"Ollama quantizes {arch} with a policy of its own, which ggquant does not reproduce; "
                f"use 'mlx:{key}' for one type on every matrix"
            )
        mode, b, g = OLLAMA_TYPES[key]
        return MLXRecipe("ollama:" + key, mode, b, g)
    mode, b, g = _mlx.resolve(key, bits, group_size)
    _check(mode, b, g)
    if quant_predicate is None:
        return MLXRecipe("uniform", mode, b, g)
    if quant_predicate not in MLX_LM_RECIPES:
        raise GGQuantError(f"unknown quant_predicate {quant_predicate!r}; expected one of {sorted(MLX_LM_RECIPES)}")
    if mode != "affine":
        raise GGQuantError(f"quant_predicate {quant_predicate!r} takes the affine mode only (as mlx_lm), not {mode!r}")
    low, high = MLX_LM_RECIPES[quant_predicate]
    _check(mode, low, g)
    _check(mode, high, g)
    layers, location = _mixed_layout(quant_predicate, config, names)
    # mlx_lm writes its q_group_size argument into each entry (null unless given); "mlx:int4" stands for 32
    entry_group = group_size if key.removeprefix("mlx:") == "affine" else g
    return MLXRecipe("mlx_lm:" + quant_predicate, mode, b, g, entry_group, low, high, layers, location)


__all__ = [
    "KERNEL_CODES", "MLX_LM_RECIPES", "OLLAMA_TYPES", "MLXRecipe", "TensorQuant", "is_mlx_quant", "layer_quant",
    "mlx_recipe",
]  # fmt: skip
