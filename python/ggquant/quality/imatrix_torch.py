"""Importance matrices from a torch model, accumulated as ``llama-imatrix`` does and written in its GGUF format
(/work/shared/reference/quality.md §2.1-2.2).

For every matrix multiplication llama.cpp feeds to the imatrix collector (``blk.*`` weights of two or more
dimensions, the MoE router included; not ``token_embd`` and, by default, not ``output``) the per-column sum of
squared input activations and the number of input rows are accumulated in float64 over all positions of every
chunk; stacked experts get one row of sums and one count per expert, counting only the tokens routed to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GGQuantError
from ..gguf import GGUFValueType, GGUFWriter
from ..qtypes import GGMLType
from .names import TensorMap
from .torch_backend import TorchModel
from ..progress import Progress
from .util import read_text


class _Acc:
    def __init__(self, n_exp: int, n_cols: int) -> None:
        self.sums = np.zeros((n_exp, n_cols), np.float64)
        self.counts = np.zeros(n_exp, np.float64)


def _collected(tm: TensorMap, process_output: bool) -> bool:
    if tm.name == "output.weight":
        return process_output
    return tm.name.startswith("blk.") and tm.name.endswith(".weight") and len(tm.shape) >= 2


def _install_hooks(tm_model: TorchModel, process_output: bool) -> tuple[dict[str, _Acc], list[Any]]:
    torch = tm_model.torch
    modules = dict(tm_model.model.named_modules())
    accs: dict[str, _Acc] = {}
    handles: list[Any] = []
    fused: dict[str, dict[str, list[str]]] = {}  # experts module -> {"gate_up"/"down": GGUF names fed by it}

    def dense(acc: _Acc, row: int) -> Callable[..., None]:
        def hook(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
            x = args[0] if args else next(iter((kwargs or {}).values()))
            x = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
            acc.sums[row] += (x * x).sum(0).cpu().numpy()
            acc.counts[row] += x.shape[0]
        return hook

    for name, tm in tm_model.tmap.items():
        if not _collected(tm, process_output):
            continue
        n_exp = tm.shape[0] if len(tm.shape) == 3 else 1
        accs[name] = _Acc(n_exp, tm.shape[-1])
        for part in tm.parts:
            stem, leaf = part.hf_name.rsplit(".", 1)
            if leaf == "weight" and part.index is None and stem in modules:
                handles.append(modules[stem].register_forward_pre_hook(dense(accs[name], part.expert or 0)))
            elif stem in modules and leaf in ("gate_up_proj", "down_proj"):
                fused.setdefault(stem, {}).setdefault("gate_up" if leaf == "gate_up_proj" else "down", []).append(name)
            else:
                raise GGQuantError(f"imatrix: cannot collect the input of {name} ({part.hf_name})")
    for stem, kinds in fused.items():
        mod = modules[stem]
        handles.append(mod.register_forward_pre_hook(_experts_hook(torch, mod, kinds, accs), with_kwargs=True))
    return accs, handles


def _experts_hook(torch: Any, mod: Any, kinds: dict[str, list[str]], accs: dict[str, _Acc]) -> Callable[..., None]:
    """Per-expert inputs of a fused experts module (hidden states, top-k expert ids): the routed rows feed
    gate/up; ``act(gate) * up`` of those rows feeds down."""
    def hook(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        vals = list(args) + list(kwargs.values())
        h, idx = vals[0].detach(), vals[1].detach()
        h = h.reshape(-1, h.shape[-1])
        idx = idx.reshape(h.shape[0], -1)
        for e in range(int(mod.gate_up_proj.shape[0])):
            rows = (idx == e).any(dim=1).nonzero().reshape(-1)
            if rows.numel() == 0:
                continue
            x = h[rows]
            inputs = {"gate_up": x}
            if "down" in kinds:
                gate, up = torch.nn.functional.linear(x, mod.gate_up_proj[e]).chunk(2, dim=-1)
                inputs["down"] = mod.act_fn(gate) * up
            for kind, names in kinds.items():
                s = (inputs[kind].double() ** 2).sum(0).cpu().numpy()
                for n in names:
                    accs[n].sums[e] += s
                    accs[n].counts[e] += x.shape[0]
    return hook


def compute_imatrix(
    model: Any,
    text: Any,
    *,
    ctx: int = 512,
    n_chunks: int | None = None,
    device: Any = None,
    process_output: bool = False,
    tokenizer: Any = None,
    progress: bool = True,
    output: str | os.PathLike[str] | None = None,
    dataset: str | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Accumulate an importance matrix on a torch model, as ``llama-imatrix`` does.

    Args:
        model: a Hugging Face model directory or a loaded transformers model.
        text: calibration text (``str``), a text file (``pathlib.Path``, read as ``-f``), or token ids.
        ctx: tokens per chunk (``-c``); each chunk is decoded independently with BOS in its first slot, and
            every position contributes.
        n_chunks: at most this many chunks (``--chunks``).
        device: torch device (default CUDA when available).
        process_output: also collect ``output.weight`` (``--process-output``).
        tokenizer: when ``model`` is a loaded model without its directory.
        progress: progress with an ETA on stderr.
        output: also write llama.cpp's GGUF imatrix file there (written to a temporary name, renamed at the end).
        dataset: the dataset name recorded in ``imatrix.datasets`` (default: the text file's path).

    Returns:
        ``{GGUF tensor name: (in_sum2, counts)}``: raw float32 sums of squares ``(n_experts, n_cols)`` and
        token counts ``(n_experts,)`` (n_experts = 1 for dense tensors).

    Raises:
        GGQuantError: the text is shorter than one chunk, the model cannot be mapped, or torch is missing.

    Example:
        >>> ggquant.compute_imatrix("models/pycoder-23m", Path("calib.py"), output="imatrix.gguf")  # doctest: +SKIP
    """
    tmm = TorchModel(model, device=device, tokenizer=tokenizer)
    if isinstance(text, (str, os.PathLike)):
        tokens = tmm.tokenize(read_text(text))
    else:
        tokens = np.asarray(text, np.int64).reshape(-1)
    total = len(tokens) // ctx
    if total < 1:
        raise GGQuantError(f"the calibration text has {len(tokens)} tokens, fewer than one chunk of ctx = {ctx}")
    n = min(total, n_chunks) if n_chunks else total
    accs, handles = _install_hooks(tmm, process_output)
    prog = Progress(n, not progress, desc="imatrix", unit="chunk")
    done = False
    torch = tmm.torch
    try:
        for i in range(n):
            prog.start(f"chunk {i + 1}/{n}")
            ids = torch.tensor(tokens[i * ctx:(i + 1) * ctx][None], device=tmm.device)
            if tmm.add_bos and tmm.bos_id is not None:
                ids[0, 0] = tmm.bos_id
            with torch.inference_mode():
                tmm.model(input_ids=ids, use_cache=False, logits_to_keep=1)
            prog.update()
        done = True
    finally:
        prog.close(interrupted=not done)
        for h in handles:
            h.remove()
    out = {k: (a.sums.astype(np.float32), a.counts.astype(np.float32)) for k, a in accs.items()}
    for k, (s, _) in out.items():
        if not np.isfinite(s).all():
            raise GGQuantError(f"imatrix: non-finite values detected in {k}")
    if output is not None:
        if dataset is None:
            dataset = os.fspath(text) if isinstance(text, os.PathLike) else ""
        write_imatrix(output, out, chunk_count=n, chunk_size=ctx, datasets=[dataset] if dataset else [])
    return out


def write_imatrix(path: str | os.PathLike[str], data: dict[str, tuple[np.ndarray, np.ndarray]], *, chunk_count: int,
                  chunk_size: int, datasets: list[str] | None = None) -> Path:
    """Write llama.cpp's GGUF imatrix file (``general.type``, ``imatrix.*`` keys; per entry, sorted by name,
    ``<name>.in_sum2`` ``[n_cols, n_experts]`` then ``<name>.counts`` ``[1, n_experts]``, F32; dense entries
    stored 1-D as gguf's writer trims trailing 1-dimensions).

    Args:
        path: output file (written to a temporary name and renamed when complete).
        data: ``{GGUF tensor name: (in_sum2 (n_experts, n_cols), counts (n_experts,))}``.
        chunk_count / chunk_size: the ``imatrix.chunk_count`` / ``imatrix.chunk_size`` values.
        datasets: the ``imatrix.datasets`` strings.

    Returns:
        The path written.
    """
    w = GGUFWriter(path)
    with w:
        w.add_kv("general.type", "imatrix", GGUFValueType.STRING)
        w.add_kv("imatrix.datasets", list(datasets or []), GGUFValueType.ARRAY, GGUFValueType.STRING)
        w.add_kv("imatrix.chunk_count", int(chunk_count), GGUFValueType.UINT32)
        w.add_kv("imatrix.chunk_size", int(chunk_size), GGUFValueType.UINT32)
        items = sorted(data.items(), key=lambda kv: kv[0].encode())
        arrays = []
        for name, (sums, counts) in items:
            s = np.asarray(sums, np.float32)
            c = np.asarray(counts, np.float32).reshape(-1)
            s = s.reshape(c.size, -1)
            if c.size == 1:
                w.add_tensor_info(f"{name}.in_sum2", (s.shape[1],), GGMLType.F32)
                w.add_tensor_info(f"{name}.counts", (1,), GGMLType.F32)
            else:
                w.add_tensor_info(f"{name}.in_sum2", s.shape, GGMLType.F32)
                w.add_tensor_info(f"{name}.counts", (c.size, 1), GGMLType.F32)
            arrays += [(f"{name}.in_sum2", s), (f"{name}.counts", c)]
        for name, a in arrays:
            w.write_tensor(name, a)
    return Path(path)


__all__ = ["compute_imatrix", "write_imatrix"]
