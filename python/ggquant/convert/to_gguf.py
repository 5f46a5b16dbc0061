"""The GGUF end: GGUF-named tensors and metadata (:class:`GGUFSource`) -> one or more GGUF files.

llama.cpp needs two steps (``convert_hf_to_gguf.py`` to F16, then ``llama-quantize``); :func:`convert`
does both in one streaming pass: tensors are read memory-mapped one at a time, renamed and reshaped
as convert_hf_to_gguf.py does, quantized with the per-tensor types llama-quantize would choose for
the preset (:mod:`ggquant.plan`), and written to a GGUF file that appears atomically when complete.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings as _warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, GGQuantError, GGQuantWarning, UnsupportedTypeError
from ..fileio import check_not_an_input, fs_path, sigterm_as_interrupt
from ..gguf import GGUFWriter
from ..hf import archs as _archs
from ..hf import naming as _naming
from ..hf import tokenizer as _tk
from ..hf.archs import OutTensor
from ..hf.checkpoint import Checkpoint
from ..imatrix import load_imatrix as _read_imatrix
from ..imatrix import read_imatrix
from ..layout import imatrix_entries, quantized_metadata
from ..plan import LLAMA_FTYPE, ModelInfo, Plan, plan_quantization, resolve_preset, tensor_nbytes, tensor_order_key
from ..qtypes import GGMLType, type_info
from .core import HFModel, Job, input_files, open_model
from .stream import run_pass

SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(sorted(_archs.SUPPORTED))

#: one metadata entry: (key, value, GGUF value type id, element type id of an array or None)
Entry = tuple[str, Any, int, "int | None"]


@dataclass
class ConversionResult:
    """What :func:`convert` did (or, with ``dry_run``, would do).

    Attributes:
        plan: the per-tensor :class:`~ggquant.plan.Plan` (names, shapes, types, bytes).
        metadata: the GGUF key/value pairs in write order, ``key -> value``.
        header_bytes: size of the GGUF header (key/values and tensor infos, padded).
        file_size: predicted (dry run) or actual size of the output file in bytes.
        path: the output path (None for a dry run).
        arch: the GGUF architecture (``"llama"``, ``"qwen2"``, ...).
        seconds: wall time of the conversion.
        metadata_types: key -> (GGUF value type id, element type id or None).
    """

    plan: Plan
    metadata: dict[str, Any]
    header_bytes: int
    file_size: int
    path: Path | None
    arch: str
    seconds: float = 0.0
    metadata_types: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def format(self) -> str:
        """The plan as a table with the predicted file size."""
        return self.plan.format(header_bytes=self.header_bytes)


@dataclass
class GGUFSource:
    """What the GGUF end converts: GGUF-named tensors, the model facts the planner needs, and the metadata.

    Attributes:
        tensors: the output tensors in file order, each with how to read it part by part.
        model: architecture, layer, head and expert counts for :func:`ggquant.plan.plan_quantization`.
        metadata: the metadata entries in write order for a plan (``general.file_type`` depends on it).
        arch: the GGUF architecture name.
        checkpoint: where the tensors come from (error messages; closed by :meth:`close`), or None.
        warnings: what every plan made from this source should carry (e.g. no vocabulary).
        allow_requantize: a preset may requantize tensors the source stores quantized (llama-quantize
            ``--allow-requantize``); without it that is an error.
    """

    tensors: list[OutTensor]
    model: ModelInfo
    metadata: Callable[[Plan], list[Entry]]
    arch: str
    checkpoint: Checkpoint | None = None
    warnings: list[str] = field(default_factory=list)
    allow_requantize: bool = False

    def close(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.close()


@dataclass
class GGUFOutput:
    """One GGUF file to write from a :class:`GGUFSource`: the preset (or a ready-made plan) and llama-quantize's options.

    Attributes:
        outfile: the file (None for a dry run).
        preset: a preset or type name (see :func:`ggquant.plan.plan_quantization`) or a :class:`~ggquant.plan.Plan`
            for exactly the source's tensors, used as it is (the other planning options are then ignored).
        tensor_types, token_embedding_type, output_tensor_type, pure: as llama-quantize's options.
        split_max_tensors, split_max_size: shard the file as llama-gguf-split does.
    """

    outfile: str | os.PathLike[str] | None
    preset: str | GGMLType | Plan = "Q4_K_M"
    tensor_types: Iterable[str] | Mapping[str, Any] | None = None
    token_embedding_type: GGMLType | str | None = None
    output_tensor_type: GGMLType | str | None = None
    pure: bool = False
    split_max_tensors: int | None = None
    split_max_size: int | None = None


# ---------------------------------------------------------------------------------------------
# Hugging Face model -> GGUFSource


def load_imatrix(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read an importance matrix written by llama-imatrix (GGUF format or the legacy ``.dat`` format)
    into ``{GGUF tensor name: float32 weights}`` (``ne0`` values, ``ne0 * n_expert`` for expert tensors),
    normalized as llama-quantize does (see :func:`ggquant.imatrix.read_imatrix`).

    Example:
        >>> w = load_imatrix("imatrix.gguf")  # doctest: +SKIP
    """
    return {k: np.asarray(v, np.float32).reshape(-1) for k, v in _read_imatrix(Path(path)).items()}


def _size_label(outs: Sequence[OutTensor]) -> str | None:
    total = shared = expert = esum = ntens = 0
    for t in outs:
        size = int(np.prod(t.shape, dtype=np.int64))
        if "_exps." in t.name and len(t.shape) >= 3:
            c = t.shape[-2 if ".bias" in t.name else -3]
            expert += size // c
            esum += c
            ntens += 1
        else:
            shared += size
        total += size
    if total <= 0:
        return None
    ecount = esum // ntens if ntens else 0

    def rounded(n: int) -> str:
        for lim, scale, suf in ((1e12, 1e-12, "T"), (1e9, 1e-9, "B"), (1e6, 1e-6, "M")):
            if n > lim:
                v = n * scale
                break
        else:
            v, suf = n * 1e-3, "K"
        fix = max(2 - len(str(round(v)).lstrip("0")), 0)
        return f"{v:.{fix}f}{suf}"

    return f"{ecount}x{rounded(shared + expert)}" if ecount > 0 else rounded(total)


def hf_source(hf: HFModel, tokenizer_dir: str | os.PathLike[str] | None = None, name: str | None = None,
              no_vocab: bool = False) -> GGUFSource:
    """The GGUF view of a Hugging Face model: tensors renamed and reshaped as convert_hf_to_gguf.py does,
    metadata in its order (names, hyper-parameters, vocabulary).

    Args:
        hf: the opened model (:func:`ggquant.convert.core.open_model`).
        tokenizer_dir: where tokenizer.json / tokenizer.model live (default: the model directory).
        name: ``general.name`` (default: derived as gguf-py does).
        no_vocab: write the file without a vocabulary when there is no tokenizer (a warning, not an error).

    Returns:
        A :class:`GGUFSource` that owns ``hf``'s checkpoint.

    Raises:
        GGQuantError: unsupported architecture (the message lists the supported ones), unmappable tensors,
            or no tokenizer (without ``no_vocab``).
    """
    arch = _archs.arch_for(hf.hparams)
    outs = arch.tensors(hf.checkpoint)
    model = ModelInfo(arch=arch.gguf_arch, n_layer=arch.n_layer, n_head=arch.n_head, n_head_kv=arch.n_head_kv,
                      n_expert=arch.n_expert)
    tok_dir = Path(fs_path(tokenizer_dir, "tokenizer_dir")) if tokenizer_dir is not None else hf.model_dir
    total_params = sum(int(np.prod(t.shape, dtype=np.int64)) for t in outs)
    general = _naming.general_entries(hf.hparams, hf.model_dir, total_params, _size_label(outs), name)
    vocab = arch.vocab_entries(tok_dir)
    warnings = []
    if not vocab:
        where = str(tok_dir) if tok_dir is not None else "a state dict without tokenizer_dir"
        if not no_vocab:
            raise GGQuantError(f"{where}: no tokenizer.json or tokenizer.model; llama.cpp cannot run a GGUF "
                               f"without a vocabulary; pass --tokenizer-dir DIR (tokenizer_dir=), or --no-vocab "
                               f"(no_vocab=True) to write one anyway")
        warnings.append(f"{where}: no tokenizer.json or tokenizer.model: the GGUF has no vocabulary (--no-vocab)")

    def metadata(plan: Plan) -> list[Entry]:
        # convert_hf_to_gguf.py's order
        entries: list[Entry] = [("general.architecture", arch.gguf_arch, _tk.STR, None), *arch.early_entries(),
                                ("general.type", "model", _tk.STR, None)]
        entries += general
        entries += arch.hparam_entries(plan.file_type)
        entries.append(("general.quantization_version", 2, _tk.U32, None))
        entries += vocab
        ordered: dict[str, Entry] = {}
        for e in entries:  # a key set twice keeps its first position and its last value (as gguf-py)
            ordered[e[0]] = e
        return list(ordered.values())

    return GGUFSource(outs, model, metadata, arch.gguf_arch, hf.checkpoint, warnings)


# ---------------------------------------------------------------------------------------------
# GGUFSource -> GGUF files


def _plan_for(source: GGUFSource, out: GGUFOutput, has_imatrix: bool) -> Plan:
    if isinstance(out.preset, Plan):
        plan = out.preset
        want = [(t.name, tuple(t.shape)) for t in source.tensors]
        by_name = {t.name: t for t in plan.tensors}
        got = sorted((t.name, tuple(t.shape)) for t in plan.tensors)
        if got != sorted(want) or len(by_name) != len(plan.tensors):
            bad = next((g for g, w in zip(got, sorted(want)) if g != w), None) or f"{len(got)} tensors, not {len(want)}"
            raise GGQuantError(f"the plan does not match the model's tensors (first difference: {bad})")
        # in the source's order (llama-quantize's for quantized files); the caller's plan stays as it was
        return dataclasses.replace(plan, tensors=[by_name[n] for n, _ in want], warnings=list(plan.warnings))
    plan = plan_quantization([(t.name, t.shape, t.stored_type or GGMLType.F32) for t in source.tensors], out.preset,
                             source.model, has_imatrix=has_imatrix, tensor_types=out.tensor_types,
                             token_embedding_type=out.token_embedding_type,
                             output_tensor_type=out.output_tensor_type, pure=out.pure)
    return plan if _quantizes(out.preset) else _keep_stored(plan)


def _keep_stored(plan: Plan) -> Plan:
    # convert_hf_to_gguf.py writes tensors the checkpoint stores quantized (gpt-oss's MXFP4 experts) as they are
    # into its F32/F16/BF16 files, and says so in general.file_type
    kept = [dataclasses.replace(t, type=t.source_type, nbytes=tensor_nbytes(t.shape, t.source_type))
            if type_info(t.source_type).is_quantized else t for t in plan.tensors]
    if not any(t.type == GGMLType.MXFP4 for t in kept):
        return dataclasses.replace(plan, tensors=kept)
    return dataclasses.replace(plan, tensors=kept, file_type=LLAMA_FTYPE["MXFP4_MOE"])


def _problems(plan: Plan, has_imatrix: bool, allow_requantize: bool) -> list[GGQuantError]:
    problems: list[GGQuantError] = []
    requant = [t for t in plan.tensors if type_info(t.source_type).is_quantized and t.type != t.source_type]
    if requant and not allow_requantize:
        t = requant[0]
        problems.append(FormatError(f"{t.name} (and {len(requant) - 1} more) is stored as {t.source_type.name} in the "
                                    f"checkpoint and preset {plan.preset} would requantize it to {t.type.name}, "
                                    f"which loses quality; pass allow_requantize=True (CLI: --allow-requantize) to do "
                                    f"it anyway, as llama-quantize --allow-requantize does"))
    missing = sorted({type_info(t.type).name for t in plan.tensors if not type_info(t.type).can_quantize})
    if missing:
        problems.append(UnsupportedTypeError(f"preset {plan.preset} needs type(s) {', '.join(missing)}, which this "
                                             f"build of ggquant cannot quantize yet"))
    need = [t.name for t in plan.tensors if t.requires_imatrix] if not has_imatrix else []
    if need:
        problems.append(GGQuantError(f"preset {plan.preset} quantizes {need[0]} (and {len(need) - 1} more) to a "
                                     f"type that requires an importance matrix; pass imatrix="))
    return problems


def convert_source(
    source: GGUFSource,
    outputs: Sequence[GGUFOutput],
    *,
    imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    nthreads: int | None = None,
) -> list[ConversionResult]:
    """Write one GGUF file per output in a single pass over the source's tensors (each read once).

    Args:
        source: the tensors and metadata (:func:`hf_source`, or any other :class:`GGUFSource`).
        outputs: the files to write.
        imatrix: importance matrix, a llama-imatrix file or ``{gguf tensor name: weights}``.
        dry_run: only plan: no tensor data is read and nothing is written (what would stop the real
            conversion is listed in each ``plan.warnings``).
        quiet: no progress bar.
        nthreads: quantization threads.

    Returns:
        One :class:`ConversionResult` per output. When every output is a quantized preset the files
        are laid out as llama-quantize writes them (:func:`llama_quantize_layout`); a pass that also
        writes F32/F16/BF16 keeps the source's order (convert_hf_to_gguf.py's) for all of them.

    Raises:
        GGQuantError: a type this build cannot quantize, a missing importance matrix, unreadable tensors.
    """
    t0 = time.perf_counter()
    if outputs and all(_quantizes(out.preset) for out in outputs):  # one tensor order per pass
        source = llama_quantize_layout(source, imatrix)
    imx: dict[str, np.ndarray] | None = None
    if imatrix is not None:
        imx = load_imatrix(imatrix) if isinstance(imatrix, (str, bytes, os.PathLike)) else {
            k: np.asarray(v, np.float32).reshape(-1) for k, v in imatrix.items()}
    if not dry_run and any(out.outfile is None for out in outputs):
        raise GGQuantError("outfile is required unless dry_run=True")
    results: list[ConversionResult] = []
    writers: list[GGUFWriter] = []  # nothing is on disk before the first tensor is written
    try:
        for out in outputs:
            plan = _plan_for(source, out, imx is not None)
            problems = _problems(plan, imx is not None, source.allow_requantize)
            if problems and not dry_run:
                raise problems[0]
            for warning in [str(p) for p in problems] + source.warnings:  # a dry run still shows the plan
                if warning not in plan.warnings:
                    plan.warnings.append(warning)
            entries = source.metadata(plan)
            # a dry run's writer only measures the header: its path is never created
            w = GGUFWriter(out.outfile or "dry-run.gguf", split_max_tensors=out.split_max_tensors,
                           split_max_size=out.split_max_size)
            writers.append(w)
            for key, value, vt, st in entries:
                w.add_kv(key, value, vt, st)  # type: ignore[arg-type]
            for t in plan.tensors:
                w.add_tensor_info(t.name, t.shape, t.type)
            header = sum(w.header_sizes())
            results.append(ConversionResult(plan, {e[0]: e[1] for e in entries}, header,
                                            header + plan.tensor_data_size(), None, source.arch,
                                            metadata_types={e[0]: (e[2], e[3]) for e in entries}))
    except BaseException:
        for w in writers:
            w.abort()
        raise
    for r in results:  # scripts see them through `warnings`; the CLI prints them on stderr
        for message in r.plan.warnings:
            _warnings.warn(message, GGQuantWarning, stacklevel=3)
    if dry_run:
        for r, w in zip(results, writers):
            w.abort()
            r.seconds = time.perf_counter() - t0
        return results
    run_pass(source.tensors, [Job(r.plan.tensors, w, imx) for r, w in zip(results, writers)], source.checkpoint,
             nthreads=nthreads, quiet=quiet)
    for r, w in zip(results, writers):
        paths = [Path(p) for p in w.shard_paths()]
        if not all(p.exists() for p in paths):
            raise GGQuantError(f"{paths[0]}: the GGUF writer produced no file")
        r.path, r.file_size = paths[0], sum(p.stat().st_size for p in paths)
        r.seconds = time.perf_counter() - t0
    return results


def _quantizes(preset: str | GGMLType | Plan) -> bool:
    if isinstance(preset, Plan):
        return any(type_info(t.type).is_quantized for t in preset.tensors)
    return type_info(resolve_preset(preset)[1]).is_quantized


def llama_quantize_layout(source: GGUFSource, imatrix: str | os.PathLike[str] | Mapping[str, Any] | None) -> GGUFSource:
    """``source`` as llama-quantize would write it after convert_hf_to_gguf.py (see :mod:`ggquant.layout`):
    tensors in llama.cpp's order, ``general.quantization_version``/``general.file_type`` last, then the
    imatrix keys of an imatrix file. A quantized preset gives the two-step route's file byte for byte."""
    keys = imatrix_entries(imatrix, read_imatrix(imatrix)) if isinstance(imatrix, (str, os.PathLike)) else []
    meta = source.metadata
    return dataclasses.replace(source, tensors=sorted(source.tensors, key=lambda t: tensor_order_key(t.name)),
                               metadata=lambda plan: quantized_metadata(meta(plan), plan.file_type, keys))


def convert(
    model: str | os.PathLike[str] | Mapping[str, Any],
    outfile: str | os.PathLike[str] | None,
    preset: str | GGMLType | Plan = "Q4_K_M",
    *,
    config: Any = None,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    tensor_types: Iterable[str] | Mapping[str, Any] | None = None,
    token_embedding_type: GGMLType | str | None = None,
    output_tensor_type: GGMLType | str | None = None,
    pure: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    allow_requantize: bool = False,
    name: str | None = None,
    nthreads: int | None = None,
    split_max_tensors: int | None = None,
    split_max_size: int | None = None,
    no_vocab: bool = False,
) -> ConversionResult:
    """Convert a Hugging Face checkpoint to a (quantized) GGUF file in one streaming pass.

    Args:
        model: a model directory (``config.json`` plus ``model.safetensors``, sharded
            ``model-*.safetensors`` with ``model.safetensors.index.json``, or ``pytorch_model*.bin``),
            or a state dict (name -> torch tensor or NumPy array, with ``config=``).
        outfile: the GGUF file to write (ignored for ``dry_run``). It appears only when complete.
        preset: a llama.cpp preset (``"Q4_K_M"``, ``"Q8_0"``, ``"F16"``, ... see :data:`ggquant.plan.PRESETS`),
            a ggml type name (``"q4_K"``) for that type in every quantizable tensor, or a ready-made
            :class:`~ggquant.plan.Plan` for exactly this model's tensors (then the planning options
            below are ignored).
        config: the model config for a state dict (dict, path to config.json, or a transformers config);
            for a directory it overrides ``config.json``.
        tokenizer_dir: where tokenizer.json / tokenizer.model live (default: the model directory).
        imatrix: importance matrix, a llama-imatrix file or ``{gguf tensor name: weights}``.
        tensor_types: per-tensor overrides ``["REGEX=TYPE", ...]`` (llama-quantize ``--tensor-type``).
        token_embedding_type / output_tensor_type / pure: as llama-quantize's options.
        dry_run: only plan: no tensor data is read and nothing is written (what would stop the real
            conversion, e.g. a type this build cannot quantize, is listed in ``plan.warnings``).
        quiet: no progress bar.
        allow_requantize: convert a checkpoint that declares a ``quantization_config`` anyway.
        name: ``general.name`` (default: from ``_name_or_path`` in config.json or the directory name,
            with gguf-py's heuristics for basename, finetune, version and size label).
        nthreads: quantization threads (default: :func:`ggquant.get_num_threads`).
        split_max_tensors / split_max_size: write ``{stem}-00001-of-0000N.gguf`` shards of at most this
            many tensors / bytes of tensor data (as llama-gguf-split; llama.cpp loads the first shard).
        no_vocab: without a tokenizer, write the file anyway (llama.cpp cannot run it); by default
            a missing tokenizer is an error.

    Warns:
        GGQuantWarning: each of ``plan.warnings`` (fallback types, no vocabulary with ``no_vocab``).

    Returns:
        A :class:`ConversionResult` with the plan, metadata and (predicted) file size. For a quantized
        preset the file is laid out as llama-quantize writes it (tensor and key order, imatrix keys):
        the same bytes as ``convert_hf_to_gguf.py`` followed by ``llama-quantize`` when the
        intermediate file holds the same values (an F32 one, or BF16 for a bf16 checkpoint).

    Raises:
        GGQuantError: unsupported architecture (the message lists the supported ones), an already
            quantized checkpoint, unreadable files (the message names file and tensor), a type this
            build cannot quantize, or a preset that needs an importance matrix without one.
        GGQuantIOError: ``outfile`` is one of the model's files (weights, config, tokenizer, the
            imatrix), or a safetensors shard changed size while being read (checked before each
            tensor; a file truncated between that check and the read still ends the process with
            SIGBUS, as with every memory-mapping reader: do not modify a model while converting it).

    SIGTERM cleans up as Ctrl-C does (no temporary is left); after SIGKILL the next conversion to
    the same output removes the temporary of the dead process.

    Example:
        >>> import ggquant
        >>> r = ggquant.convert("path/to/model", "model-q4_k_m.gguf", "Q4_K_M")  # doctest: +SKIP
        >>> r.plan.tensor("output.weight").type                                    # doctest: +SKIP
        <GGMLType.Q6_K: 14>
    """
    (result,) = _convert_all(model, [(outfile, preset)], config=config, tokenizer_dir=tokenizer_dir, imatrix=imatrix,
                             tensor_types=tensor_types, token_embedding_type=token_embedding_type,
                             output_tensor_type=output_tensor_type, pure=pure, dry_run=dry_run, quiet=quiet,
                             allow_requantize=allow_requantize, name=name, nthreads=nthreads,
                             split_max_tensors=split_max_tensors, split_max_size=split_max_size, no_vocab=no_vocab)
    return result


def _convert_all(model: str | os.PathLike[str] | Mapping[str, Any],
                 targets: Sequence[tuple[str | os.PathLike[str] | None, str | GGMLType | Plan]], *, config: Any = None,
                 tokenizer_dir: str | os.PathLike[str] | None = None,
                 imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                 tensor_types: Iterable[str] | Mapping[str, Any] | None = None,
                 token_embedding_type: GGMLType | str | None = None, output_tensor_type: GGMLType | str | None = None,
                 pure: bool = False, dry_run: bool = False, quiet: bool = False, allow_requantize: bool = False,
                 name: str | None = None, nthreads: int | None = None, split_max_tensors: int | None = None,
                 split_max_size: int | None = None, no_vocab: bool = False) -> list[ConversionResult]:
    # convert() for several (outfile, preset) pairs from one read of the model
    t0 = time.perf_counter()
    with sigterm_as_interrupt():  # a killed conversion cleans up its temporary as Ctrl-C does
        hf = open_model(model, config, allow_requantize=allow_requantize)
        try:
            source = hf_source(hf, tokenizer_dir, name, no_vocab)
            source.allow_requantize = allow_requantize
            outs = [GGUFOutput(outfile, preset, tensor_types, token_embedding_type, output_tensor_type, pure,
                               split_max_tensors, split_max_size) for outfile, preset in targets]
            if not dry_run:
                inputs = input_files(hf.model_dir, tokenizer_dir,
                                     imatrix if isinstance(imatrix, (str, bytes, os.PathLike)) else None)
                for outfile, _ in targets:
                    if outfile is not None:
                        check_not_an_input(outfile, inputs, "the GGUF output")
            # quantized presets are laid out as llama-quantize writes them, float ones as convert_hf_to_gguf.py:
            # one pass per tensor order
            by_result: dict[int, ConversionResult] = {}
            for quantized in (True, False):
                group = [k for k, o in enumerate(outs) if _quantizes(o.preset) == quantized]
                if group:
                    rs = convert_source(source, [outs[k] for k in group], imatrix=imatrix, dry_run=dry_run,
                                        quiet=quiet, nthreads=nthreads)
                    by_result.update(zip(group, rs))
            results = [by_result[k] for k in range(len(outs))]
        finally:
            hf.close()
    for r in results:
        r.seconds = time.perf_counter() - t0
    return results


def convert_many(
    model: str | os.PathLike[str] | Mapping[str, Any],
    outfile: str | os.PathLike[str] | None,
    presets: Sequence[str | GGMLType | Plan],
    **options: Any,
) -> list[ConversionResult]:
    """:func:`convert` to several presets in one pass: each tensor is read once and quantized to every
    preset (once for the quantized presets and once more for float ones such as F16, which keep
    convert_hf_to_gguf.py's tensor order); each file is byte-identical to its own single-preset :func:`convert`.

    Args:
        model: as :func:`convert`.
        outfile: the file name with ``{preset}`` in it, replaced by each preset's name (as given, e.g.
            ``"out-{preset}.gguf"`` -> ``out-Q4_K_M.gguf``); ignored for a dry run.
        presets: the presets, type names or plans, each at most once.
        **options: :func:`convert`'s keyword arguments (``imatrix``, ``nthreads``, ``dry_run``, ...),
            applied to every output.

    Returns:
        One :class:`ConversionResult` per preset, in order.

    Raises:
        GGQuantError: no presets, a preset given twice, or several presets without ``{preset}`` in ``outfile``;
            otherwise as :func:`convert`.

    Example:
        >>> import ggquant
        >>> rs = ggquant.convert_many("path/to/model", "m-{preset}.gguf", ["Q4_K_M", "Q8_0"])  # doctest: +SKIP
        >>> [r.path.name for r in rs]                                                         # doctest: +SKIP
        ['m-Q4_K_M.gguf', 'm-Q8_0.gguf']
    """
    labels = [p.preset if isinstance(p, Plan) else (p.name if isinstance(p, GGMLType) else str(p)) for p in presets]
    if not labels:
        raise GGQuantError("convert_many needs at least one preset")
    if len(set(labels)) != len(labels):
        raise GGQuantError(f"presets {labels} name one preset more than once")
    if outfile is not None and len(labels) > 1 and "{preset}" not in os.fspath(outfile):
        raise GGQuantError(f"{outfile}: with several presets the output name needs {{preset}}, e.g. out-{{preset}}.gguf")
    files = [None if outfile is None else os.fspath(outfile).replace("{preset}", label) for label in labels]
    return _convert_all(model, list(zip(files, presets)), **options)


__all__ = ["SUPPORTED_ARCHITECTURES", "ConversionResult", "Entry", "GGUFOutput", "GGUFSource", "convert",
           "convert_many", "convert_source", "hf_source", "llama_quantize_layout", "load_imatrix"]
