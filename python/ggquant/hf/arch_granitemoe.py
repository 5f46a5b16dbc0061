"""Granite MoE (``GraniteMoeForCausalLM``, ``GraniteMoeSharedForCausalLM``), as llama.cpp's convert_hf_to_gguf.py
(``GraniteMoeModel``, a ``GraniteModel``) converts it: Granite 3's keys and q/k permutation under the arch name
``granitemoe``, and JetMoE-style parallel experts.

The experts are stored already stacked: ``block_sparse_moe.input_linear`` ``(experts, 2 * ff, hidden)`` holds
gate and up (split in halves into ``ffn_gate_exps``/``ffn_up_exps``), ``output_linear`` is ``ffn_down_exps``
and ``router.layer`` the router. The shared expert of GraniteMoeShared (``shared_mlp.input_linear``/
``output_linear``) is split the same way into ``ffn_{gate,up,down}_shexp``.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GGQuantError
from . import tokenizer as tk
from .archs import Arch, OutTensor, _index, register
from .checkpoint import Checkpoint

# as stored (input_linear, output_linear) and as transformers names them in memory (a state dict passed in)
_EXPERTS = re.compile(r"model\.layers\.(\d+)\.block_sparse_moe\.(input_linear\.weight|output_linear\.weight|"
                      r"experts\.gate_up_proj|experts\.down_proj)")
_SHARED_GATE_UP = re.compile(r"model\.layers\.(\d+)\.shared_mlp\.input_linear\.weight")


@register("granitemoe")
class GraniteMoeArch(Arch):
    """``GraniteMoeModel``: Granite 3 with routed (and optionally shared) experts."""

    arch_names = [(re.compile(a), b) for a, b in [
        (r"model\.layers\.(\d+)\.block_sparse_moe\.router(?:\.layer)?\.weight", "blk.{0}.ffn_gate_inp.weight"),
        (r"model\.layers\.(\d+)\.shared_mlp\.output_linear\.weight", "blk.{0}.ffn_down_shexp.weight"),
    ]]

    def __post_init__(self) -> None:  # GraniteModel ignores head_dim
        self.hparams = {k: v for k, v in self.hparams.items() if k != "head_dim"}

    @property
    def _granite(self) -> Arch:
        # GraniteMoeModel subclasses GraniteModel: the same transforms, keys and vocabulary, under its own name
        return Arch(self.hf_arch, "granite", self.hparams)

    def transform(self, gguf_name: str, hf_name: str, raw: tuple[np.ndarray, str]) -> tuple[np.ndarray, str]:
        return self._granite.transform(gguf_name, hf_name, raw)

    def arch_tensors(self, src: Checkpoint, hf_name: str, name: str) -> list[OutTensor] | None:
        m = _EXPERTS.fullmatch(name)
        if m:
            return self._fused_experts(src, hf_name, int(m.group(1)),
                                       "down_proj" if "down" in m.group(2) or "output" in m.group(2) else "gate_up_proj")
        m = _SHARED_GATE_UP.fullmatch(name)
        if m is None:
            return None
        rows, cols = src.shape(hf_name)
        if rows % 2:
            raise GGQuantError(f"{src.origin(hf_name)}: {hf_name} has an odd number of gate+up rows {rows}")
        f = rows // 2
        return [OutTensor(f"blk.{m.group(1)}.ffn_{part}_shexp.weight", (f, cols),
                          [partial(_index, src, hf_name, sl)], [hf_name])
                for part, sl in (("gate", slice(0, f)), ("up", slice(f, None)))]

    def hparam_entries(self, file_type: int) -> list[tk.Entry]:
        e = [(f"granitemoe.{k[len('granite.'):]}" if k.startswith("granite.") else k, v, t, sub)
             for k, v, t, sub in self._granite.hparam_entries(file_type)]
        shared: Any = self.hparams.get("shared_intermediate_size")
        if shared:
            e.append(("granitemoe.expert_shared_feed_forward_length", int(shared), tk.U32, None))
        return e

    def vocab_entries(self, model_dir: Path | None) -> list[tk.Entry]:
        return self._granite.vocab_entries(model_dir)
