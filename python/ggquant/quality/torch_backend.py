"""The ``torch`` backend: a transformers model whose weights are swapped in place for quantized ones.

A quantized candidate (a GGUF file, an MLX-quantized directory, or a type per GGUF tensor) is applied by
overwriting the affected parameters with ``dequantize(quantize(w, type))`` (or the file's dequantized values,
mapped back to Hugging Face layout by :mod:`ggquant.quality.names`) and restored afterwards from copies of
exactly the tensors that changed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GGQuantError
from ..gguf import read_gguf_split
from ..imatrix import imatrix_for
from ..mlx import MLXQuantized
from ..mlx import dequantize as mlx_dequantize
from ..mlx_recipes import layer_quant
from ..plan import ModelInfo
from ..quants import dequantize, quantize
from ..safetensors import load_checkpoint
from .llama_backend import LlamaVocab
from .names import Part, gguf_tensor_map

#: GGUF tensors the converter generates from the config rather than from a weight
GENERATED = ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight")


def import_torch() -> tuple[Any, Any]:
    """torch and transformers, or a clear error naming the extra to install."""
    try:
        import torch
        import transformers
    except ImportError as e:
        raise GGQuantError(f"the torch backend needs PyTorch and transformers ({e.name} is missing): "
                           f"pip install 'ggquant[eval]'") from None
    return torch, transformers


#: GGUF architecture -> (HF architecture, {config key: GGUF key suffix}) the torch backend can rebuild
_FROM_GGUF: dict[str, str] = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_GGUF_KEYS = {"hidden_size": "embedding_length", "intermediate_size": "feed_forward_length",
              "num_hidden_layers": "block_count", "num_attention_heads": "attention.head_count",
              "num_key_value_heads": "attention.head_count_kv", "rms_norm_eps": "attention.layer_norm_rms_epsilon",
              "rope_theta": "rope.freq_base", "max_position_embeddings": "context_length",
              "head_dim": "attention.key_length"}


def _model_from_gguf(tr: Any, torch: Any, path: Path) -> tuple[Any, dict[str, Any]]:
    """An empty transformers model shaped as the GGUF's config (its weights are loaded afterwards)."""
    reader = read_gguf_split(path)
    try:
        meta = reader.metadata
        arch = str(meta.get("general.architecture"))
        if arch not in _FROM_GGUF:
            raise GGQuantError(f"{path}: the torch backend cannot rebuild a {arch!r} model from GGUF (supported: "
                               f"{', '.join(_FROM_GGUF)}); pass the Hugging Face directory, or use backend='llama.cpp'")
        if "rope_freqs.weight" in {t.name for t in reader.tensors}:
            raise GGQuantError(f"{path}: rope scaling factors (rope_freqs) cannot be mapped back; pass the Hugging "
                               f"Face directory instead")
        hp: dict[str, Any] = {"architectures": [_FROM_GGUF[arch]], "model_type": arch}
        for key, suffix in _GGUF_KEYS.items():
            if f"{arch}.{suffix}" in meta:
                hp[key] = meta[f"{arch}.{suffix}"]
        hp["vocab_size"] = int(reader.tensor("token_embd.weight").shape[0])
        hp["tie_word_embeddings"] = "output.weight" not in {t.name for t in reader.tensors}
    finally:
        reader.close()
    cfg = tr.AutoConfig.for_model(arch, **{k: v for k, v in hp.items() if k != "model_type"})
    return tr.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32), hp


Swapped = list[tuple[Any, Any, str]]  # (tensor slot, its original values, GGUF name)


def _sqnr(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    return 10.0 * math.log10(signal / noise) if signal > 0 else float("-inf")


class TorchModel:
    """A transformers causal LM prepared for evaluation: tokenizer, GGUF tensor map, in-place weight swaps.

    Args:
        baseline: a Hugging Face model directory or a loaded transformers model (used as is: its dtype and
            device; its weights are swapped in place during an evaluation and restored afterwards).
        device: torch device (default: CUDA when available, else CPU).
        tokenizer: a tokenizer directory or a loaded tokenizer (default: the model directory's).
    """

    def __init__(self, baseline: Any, *, device: Any = None, tokenizer: Any = None) -> None:
        torch, tr = import_torch()
        self.torch = torch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        model_dir: Path | None = None
        gguf_path: Path | None = None
        if isinstance(baseline, (str, os.PathLike)) and Path(baseline).suffix == ".gguf":
            gguf_path = Path(baseline)
            model, hparams = _model_from_gguf(tr, torch, gguf_path)
            model.to(self.device)
        elif isinstance(baseline, (str, os.PathLike)):
            model_dir = Path(baseline)
            if not (model_dir / "config.json").is_file():
                raise GGQuantError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
            hparams = json.loads((model_dir / "config.json").read_text())
            try:
                model = tr.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
            except (OSError, ValueError, KeyError) as e:
                raise GGQuantError(f"{model_dir}: transformers cannot load this model: {e}") from e
            model.to(self.device)
        elif hasattr(baseline, "named_parameters") and hasattr(baseline, "config"):
            model = baseline
            hparams = baseline.config.to_dict()
            if not hparams.get("architectures"):  # a model built in memory has no saved architectures
                hparams["architectures"] = [type(baseline).__name__]
            self.device = next(model.parameters()).device
            if tokenizer is None and getattr(baseline, "name_or_path", None):
                tokenizer = baseline.name_or_path
        else:
            raise GGQuantError(f"baseline must be a model directory, a GGUF file or a transformers model, "
                               f"got {type(baseline).__name__}")
        self.model = model.eval()
        self.hparams = hparams
        self.params: dict[str, Any] = dict(model.named_parameters())  # tied weights once
        self.arch, self.tmap = gguf_tensor_map(hparams, {n: tuple(p.shape) for n, p in self.params.items()})
        self.info = ModelInfo(arch=self.arch.gguf_arch, n_layer=self.arch.n_layer, n_head=self.arch.n_head,
                              n_head_kv=self.arch.n_head_kv, n_expert=self.arch.n_expert)
        if gguf_path is not None:
            with torch.no_grad():
                self._load_gguf(gguf_path, None)
        self._tokenize: Callable[[str], list[int]] | None = None
        self.bos_id: int | None = None
        self.add_bos = False
        tok_src = tokenizer if tokenizer is not None else model_dir
        if tok_src is not None:
            tok = tr.AutoTokenizer.from_pretrained(tok_src) if isinstance(tok_src, (str, os.PathLike)) else tok_src
            bos = tok.bos_token_id
            self.bos_id = None if bos is None else int(bos)
            self.add_bos = bos is not None and list(tok("a").input_ids[:1]) == [bos]
            self._tokenize = lambda text: list(tok(text, add_special_tokens=True).input_ids)
        elif gguf_path is not None:  # the GGUF's own vocabulary, through llama.cpp's tokenizer
            vocab = LlamaVocab(gguf_path)
            self.bos_id, self.add_bos, self._tokenize = vocab.bos_id, vocab.add_bos, vocab.tokenize
        self.n_vocab = int(self.params[self.tmap["token_embd.weight"].parts[0].hf_name].shape[0])

    # -- inputs and outputs ----------------------------------------------------------------------

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids as llama.cpp's ``common_tokenize(text, add_special=True)`` (one BOS when the vocab adds it)."""
        if self._tokenize is None:
            raise GGQuantError("no tokenizer for this model: pass tokenizer= (a directory) or token ids as the text")
        return np.asarray(self._tokenize(text), np.int64)

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(GGUF name, shape) of every mapped tensor, in converter order (for :func:`ggquant.plan.plan_quantization`)."""
        return [(n, tm.shape) for n, tm in self.tmap.items()]

    def logits(self, chunk: np.ndarray, first: int) -> np.ndarray:
        """float32 logits ``(len(chunk) - 1 - first, n_vocab)`` at positions ``first .. len(chunk) - 2``."""
        torch = self.torch
        ids = torch.tensor(np.asarray(chunk, np.int64)[None], device=self.device)  # a copy: BOS goes in below
        if self.add_bos and self.bos_id is not None:  # llama.cpp decodes each chunk with BOS in its first slot
            ids[0, 0] = self.bos_id
        keep = ids.shape[1] - first
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=False, logits_to_keep=keep)
        return np.asarray(out.logits[0, :-1].float().cpu().numpy(), np.float32)

    # -- swapping weights ------------------------------------------------------------------------

    def _slot(self, part: Part) -> Any:
        p = self.params[part.hf_name].data
        return p[part.index] if part.index is not None else p

    def _write(self, saved: Swapped | None, part: Part, values: np.ndarray, name: str) -> None:
        torch = self.torch
        slot = self._slot(part)
        if tuple(slot.shape) != tuple(values.shape):
            raise GGQuantError(f"tensor {name!r}: shape {tuple(values.shape)} does not match the baseline's "
                               f"{part.hf_name} {tuple(slot.shape)}")
        if saved is not None:
            saved.append((slot, slot.clone(), name))
        slot.copy_(torch.from_numpy(np.require(values, requirements=["C", "W"])).to(slot.dtype))  # copies read-only maps

    def weight_errors(self, saved: Swapped) -> dict[str, dict[str, float]]:
        """Per swapped tensor: MSE, SQNR (dB) and max abs error of the swapped values against the originals."""
        acc: dict[str, list[float]] = {}
        for slot, orig, name in saved:
            d = (slot.double() - orig.double())
            a = acc.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            a[0] += float((d * d).sum())
            a[1] += float((orig.double() ** 2).sum())
            a[2] = max(a[2], float(d.abs().max()) if d.numel() else 0.0)
            a[3] += d.numel()
        return {k: {"mse": e / max(n, 1), "sqnr_db": _sqnr(s, e), "max_abs_err": m} for k, (e, s, m, n) in acc.items()}

    def _restore(self, saved: Swapped) -> None:
        with self.torch.no_grad():
            for slot, orig, _ in reversed(saved):
                slot.copy_(orig)

    def _host(self, part: Part) -> np.ndarray:
        return np.asarray(self._slot(part).detach().to("cpu", self.torch.float32).numpy(), np.float32)

    def _fake_quant(self, saved: Swapped, name: str, t: Any, imatrix: Mapping[str, np.ndarray] | None) -> None:
        tm = self.tmap.get(name)
        if tm is None:
            raise GGQuantError(f"tensor {name!r} is not a weight of this {self.arch.gguf_arch} model "
                               f"(GGUF names such as {next(iter(self.tmap))!r})")
        wts = None
        if imatrix is not None and name in imatrix and len(tm.shape) >= 2:
            wts = imatrix_for(imatrix, name, tm.shape)
        for part in tm.parts:
            w = self._host(part)
            experts = [part.expert] if part.expert is not None else (range(w.shape[0]) if w.ndim == 3 else [None])
            out = np.empty_like(w)
            for e in experts:
                row = w if (e is None or part.expert is not None) else w[e]
                iw = None if wts is None else (wts[e] if wts.ndim == 2 else wts)
                q = quantize(row, t, imatrix=iw, name=name)
                deq = dequantize(q) if isinstance(q, MLXQuantized) else dequantize(q, t, row.shape, name=name)
                if e is None or part.expert is not None:
                    out = deq
                else:
                    out[e] = deq
            self._write(saved, part, out, name)

    @contextmanager
    def with_types(self, types: Mapping[str, Any], imatrix: Mapping[str, np.ndarray] | None) -> Iterator[Swapped]:
        """Within the block, each named GGUF tensor is replaced by ``dequantize(quantize(w, type))``; yields the
        swapped slots ``(tensor, original, GGUF name)``."""
        saved: Swapped = []
        try:
            with self.torch.no_grad():
                for name, t in types.items():
                    self._fake_quant(saved, name, t, imatrix)
            yield saved
        finally:
            self._restore(saved)

    def _load_gguf(self, path: str | os.PathLike[str], saved: Swapped | None) -> None:
        reader = read_gguf_split(path)
        try:
            arch = reader.metadata.get("general.architecture")
            if arch != self.arch.gguf_arch:
                raise GGQuantError(f"{path}: architecture {arch!r} does not match the baseline's {self.arch.gguf_arch!r}")
            names = {t.name for t in reader.tensors}
            missing = [n for n in self.tmap if n not in names]
            extra = sorted(n for n in names - set(self.tmap) if n not in GENERATED)
            if missing or extra:
                raise GGQuantError(f"{path}: tensors do not match the baseline: missing {missing[:5]}, "
                                   f"unexpected {extra[:5]}")
            for name, tm in self.tmap.items():
                gt = reader.tensor(name)
                if tuple(gt.shape) != tm.shape:
                    raise GGQuantError(f"{path}: tensor {name!r} has shape {gt.shape}, the baseline's is {tm.shape}")
                values = dequantize(np.asarray(gt.data), gt.type, gt.shape, name=name)
                for part in tm.parts:
                    self._write(saved, part, tm.to_hf(values, part), name)
        finally:
            reader.close()

    @contextmanager
    def with_gguf(self, path: str | os.PathLike[str]) -> Iterator[Swapped]:
        """Within the block, every weight is the (dequantized) tensor of the GGUF file ``path``."""
        saved: Swapped = []
        try:
            with self.torch.no_grad():
                self._load_gguf(path, saved)
            yield saved
        finally:
            self._restore(saved)

    @contextmanager
    def with_mlx(self, model_dir: str | os.PathLike[str]) -> Iterator[Swapped]:
        """Within the block, every weight of the MLX-quantized directory replaces the baseline's."""
        ckpt = load_checkpoint(model_dir)
        names = set(ckpt.keys())
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
        qcfg = cfg.get("quantization") or cfg.get("quantization_config") or {}
        saved: Swapped = []
        try:
            with self.torch.no_grad():
                for hf, p in self.params.items():
                    if hf in names and hf.endswith(".weight") and hf[:-7] + ".scales" in names:
                        stem = hf[:-7]
                        biases = ckpt[stem + ".biases"] if stem + ".biases" in names else None
                        w, scales = np.asarray(ckpt[hf]), np.asarray(ckpt[stem + ".scales"])
                        mode, bits, gs = layer_quant(qcfg, stem, w.shape, scales.shape)
                        q = MLXQuantized(w, scales, None if biases is None else np.asarray(biases), mode, bits, gs)
                        values = mlx_dequantize(q)
                    elif hf in names:
                        values = np.asarray(ckpt[hf], np.float32)
                    else:
                        raise GGQuantError(f"{model_dir}: no tensor {hf!r} of the baseline")
                    self._write(saved, Part(hf), values, hf)
            yield saved
        finally:
            self._restore(saved)


__all__ = ["TorchModel", "import_torch", "GENERATED"]
