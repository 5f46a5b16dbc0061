"""The converter's tensor loop, overlapped: source rows go from the memory map straight into the
kernels (:func:`ggquant.batch.quantize_batch`: bf16/f16/FP8 read in place, no float32 copy), their
blocks straight into each output file (a GGUF output is preallocated and mapped: the kernel threads
write its pages, nothing is copied), and a writer thread hands finished tensors to the outputs (copying
only into outputs that are not mapped) while the next ones are quantized; with a core to spare it also
faults in the next tensor's pages. Small tensors are quantized together in one parallel call; big ones
in row chunks whose pages are released as they are done. One read of each tensor serves every output.

The bytes are those of quantizing each tensor alone (:func:`ggquant.quantize`), whatever the threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..batch import QuantJob, quantize_batch
from ..errors import FormatError, GGQuantError
from ..gguf import GGUFWriter
from ..hf.archs import OutTensor
from ..hf.checkpoint import Checkpoint, release_pages, to_compute_dtype
from ..progress import Progress
from ..qtypes import GGMLType, type_info
from ..quants import dequantize, row_size
from .core import Job, imatrix_weights, prefault_ahead, spare_core

#: source bytes per kernel call: small tensors are gathered up to this, big ones cut into row chunks
#: of at most this (their mapped pages are released after each chunk)
BATCH_BYTES = 64 << 20

#: written buffers kept for reuse (fresh pages cost the kernel a fault and zeroing each)
POOL_BYTES = 128 << 20

_DIRECT = ("F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")  # what the kernels read as stored
# raw ggml storage the kernels read as it is: (their source dtype, the NumPy view of the bytes)
_GGML_DIRECT: dict[GGMLType, tuple[str, type[np.generic]]] = {
    GGMLType.F32: ("F32", np.float32), GGMLType.F16: ("F16", np.float16), GGMLType.BF16: ("BF16", np.uint16)}


class _Pool:
    """Output buffers back from the writer, handed out again: the smallest free one that fits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free: list[np.ndarray] = []

    def take(self, n: int) -> np.ndarray:
        fits = [k for k, b in enumerate(self.free) if n <= b.size <= 2 * n]
        if not fits:
            return np.empty(n, np.uint8)
        return self.free.pop(min(fits, key=lambda k: self.free[k].size))[:n]

    def give(self, bufs: list[np.ndarray]) -> None:
        for b in bufs:
            base = b if b.base is None else b.base
            if isinstance(base, np.ndarray) and sum(x.size for x in self.free) + base.size <= self.limit:
                self.free.append(base)


@dataclass
class _Tensor:
    """One output tensor in flight: its buffers (one per job) and the chunks still to be quantized."""

    index: int
    bufs: list[np.ndarray]
    left: int = 0  # chunks queued but not yet quantized
    queued: bool = False  # all its chunks are queued


@dataclass
class _Batch:
    jobs: list[QuantJob] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)  # memory maps whose pages to release after
    owners: list[_Tensor] = field(default_factory=list)  # the tensor of each chunk
    nbytes: int = 0


@dataclass
class _Source:
    """One part of a source tensor as rows: values the kernels read as they are, or raw ggml blocks."""

    rows: np.ndarray  # 2-D: the values the kernels read (``dtype``); the blocks when ``stored`` is quantized
    dtype: str  # the kernels' source dtype of ``rows``
    ne0: int
    stored: GGMLType | None = None  # the ggml type of a raw part
    raw: np.ndarray | None = None  # a raw part's bytes, (rows, row bytes) uint8

    @property
    def decoded(self) -> bool:
        return self.stored is not None and self.rows is self.raw  # blocks dequantized chunk by chunk

    @property
    def n_rows(self) -> int:
        return int(self.rows.shape[0])

    @property
    def row_bytes(self) -> int:
        """What one row costs in a batch: its float32 values when blocks are decoded first."""
        return 4 * self.ne0 if self.decoded else int(self.rows.shape[1] * self.rows.itemsize)

    def values(self, lo: int, hi: int, nthreads: int | None, label: str) -> np.ndarray:
        """Rows ``lo:hi`` as the kernels read them (blocks of a quantized type decoded to float32)."""
        if not self.decoded:
            return self.rows[lo:hi]
        assert self.stored is not None
        try:
            return dequantize(self.rows[lo:hi], self.stored, (hi - lo, self.ne0), nthreads=nthreads)
        except GGQuantError as e:  # say which file and tensor, keep the error class
            raise type(e)(f"{label}: {e}") from None


def _source(arr: np.ndarray, dtype: str | GGMLType, ne0: int, what: str) -> _Source:
    """What one ``OutTensor`` part gave, ``(array, dtype)``, as rows (see :func:`run_pass`)."""
    if not isinstance(dtype, GGMLType):
        # float64 and integer storage are widened here (as convert_hf_to_gguf.py casts them); the rest is read as stored
        if dtype not in _DIRECT:
            arr, dtype = np.asarray(to_compute_dtype(arr, dtype), np.float32), "F32"
        rows = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(-1, arr.shape[-1])
        return _Source(rows, dtype, ne0)
    rb = row_size(dtype, ne0)
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    if flat.size % rb:
        raise FormatError(f"{what}: {flat.size} bytes are not whole rows of {type_info(dtype).name} "
                          f"({rb} bytes per row of {ne0})")
    raw = flat.reshape(-1, rb)
    if dtype in _GGML_DIRECT:
        kind, np_dtype = _GGML_DIRECT[dtype]
        return _Source(raw.view(np_dtype), kind, ne0, dtype, raw)
    if dtype == GGMLType.F64:
        return _Source(raw.view(np.float64).astype(np.float32), "F32", ne0, dtype, raw)
    if not type_info(dtype).is_quantized:
        raise FormatError(f"{what}: cannot convert stored {type_info(dtype).name} data")
    return _Source(raw, "F32", ne0, dtype, raw)


def run_pass(tensors: Sequence[OutTensor], jobs: Sequence[Job], ck: Checkpoint | None, *,
             nthreads: int | None = None, quiet: bool = False,
             on_tensor: Callable[[OutTensor], None] | None = None) -> None:
    """Read every tensor once and write it to every job's sink, reading, quantizing and writing
    overlapped; all sinks are closed at the end or aborted on any error (no partial output).

    Each part of an :class:`~ggquant.hf.archs.OutTensor` returns ``(array, dtype)``:

    - ``dtype`` a safetensors dtype name (``"BF16"`` as uint16 bits, ``"F16"``, ``"F32"``, ``"F8_E4M3"``...):
      ``array`` holds the values, its last axis a row; they are quantized to each planned type.
    - ``dtype`` a :class:`~ggquant.qtypes.GGMLType` (raw blocks, e.g. MXFP4 experts or any tensor of a
      GGUF input): ``array`` (any dtype, C-contiguous, e.g. ``GGUFTensor.data``) holds whole rows of
      that type, ``row_size(type, ne0)`` bytes each. Where the planned type is that type the bytes are
      copied as they are; otherwise F32/F16/BF16 rows go to the kernels as they are and blocks of a
      quantized type are dequantized chunk by chunk and quantized again (llama-quantize's
      ``--allow-requantize``). Whether requantizing is allowed is the caller's policy.

    Args:
        tensors: what to produce, in output order.
        jobs: the outputs; ``job.tensors[i]`` is the plan of ``tensors[i]``.
        ck: the checkpoint the tensors come from (for error messages), or None.
        nthreads: quantization threads.
        quiet: no progress output.
        on_tensor: called (on this thread) after each tensor is written to every sink.

    Raises:
        FormatError: a tensor cannot be read (the message names file and tensor).
        GGQuantError: quantization failed (the message names file, source and output tensor, and type).
    """
    for job in jobs:
        if len(job.tensors) != len(tensors):
            raise GGQuantError(f"a job plans {len(job.tensors)} tensors, the pass has {len(tensors)}")
    prog = Progress(sum(jobs[0].tensors[i].nbytes for i in range(len(tensors))) if jobs else 0, quiet)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ggquant-writer")
    backlog: list[tuple[Future[None], list[np.ndarray], int]] = []  # (write, buffers, tensor index), in order
    # only ggquant's own writer is known to be done with a buffer when write_tensor returns
    pool = _Pool(POOL_BYTES if all(isinstance(job.sink, GGUFWriter) for job in jobs) else 0)
    inflight: list[_Tensor] = []  # tensors with chunks not yet quantized, in order
    ahead: dict[int, list[np.ndarray | None]] = {}  # the next tensor's places in the outputs
    spare = spare_core(nthreads)

    def places_of(i: int) -> list[np.ndarray | None]:
        return [job.sink.tensor_buffer(job.tensors[i].name) for job in jobs]

    batch = _Batch()
    # written-behind bytes: one tensor of every output (double buffering), at least one batch's worth
    backlog_limit = max([BATCH_BYTES] + [sum(job.tensors[i].nbytes for job in jobs) for i in range(len(tensors))])

    def wait_written(limit: int) -> None:
        while backlog and sum(b.nbytes for w in backlog for b in w[1]) > limit:
            fut, bufs, i = backlog.pop(0)
            fut.result()
            pool.give(bufs)
            prog.update(jobs[0].tensors[i].nbytes)
            if on_tensor is not None:
                on_tensor(tensors[i])

    def write(i: int, bufs: list[np.ndarray]) -> None:
        for job, buf in zip(jobs, bufs):
            job.sink.write_tensor(job.tensors[i].name, buf)

    def hand_over() -> None:
        while inflight and inflight[0].queued and inflight[0].left == 0:  # finished tensors go out in order
            done = inflight.pop(0)
            backlog.append((writer.submit(write, done.index, done.bufs), done.bufs, done.index))
        wait_written(backlog_limit)

    def flush() -> None:
        if batch.jobs:
            if ck is not None:  # the batch reads views mapped earlier: a file shrunk since is an error, not SIGBUS
                ck.check_sizes()
            quantize_batch(batch.jobs, nthreads=nthreads)
        for a in batch.arrays:
            release_pages(a)
        for owner in batch.owners:
            owner.left -= 1
        batch.jobs.clear()
        batch.arrays.clear()
        batch.owners.clear()
        batch.nbytes = 0
        hand_over()

    try:
        for i, ot in enumerate(tensors):
            planned = [job.tensors[i] for job in jobs]
            prog.start(planned[0].name, "/".join(dict.fromkeys(p.type.name for p in planned)))
            # each output's own place for the tensor where it has one (a mapped file: no copy, no buffer);
            # with a core to spare, the writer thread faults in the next tensor's places meanwhile, off the
            # kernels' time (without one it would only take turns with a kernel thread and stall the rest)
            places = ahead.pop(i) if i in ahead else places_of(i)
            if spare and i + 1 < len(tensors):
                ahead[i + 1] = places_of(i + 1)
                prefault_ahead(writer, ahead[i + 1])
            t = _Tensor(i, [pool.take(p.nbytes) if b is None else b for p, b in zip(planned, places)])
            inflight.append(t)
            pos = [0] * len(jobs)
            ne0 = ot.shape[-1]
            n_exp = ot.shape[0] if len(ot.shape) == 3 else 1
            whole = len(ot.parts) == 1
            weights: dict[int, np.ndarray | None] = {}  # looked up only for the outputs that quantize
            for k, part in enumerate(ot.parts):
                try:
                    arr, dtype = part()
                except GGQuantError:
                    raise
                except Exception as e:
                    raise FormatError(f"{ot.origin(ck)}: cannot read {ot.name}: {e}") from e
                src = _source(arr, dtype, ne0, f"{ot.origin(ck)} ({ot.name})")
                # a 3-D tensor given whole goes one expert (and imatrix slice) at a time
                n_rows = src.n_rows // n_exp if whole and n_exp > 1 else src.n_rows
                subs = [(e * n_rows, e) for e in range(n_exp)] if whole and n_exp > 1 else [(0, None if whole else k)]
                step = max(1, BATCH_BYTES // max(1, src.row_bytes))
                for start, ix in subs:
                    for r in range(0, n_rows, step):
                        lo, hi = start + r, start + min(r + step, n_rows)
                        values: np.ndarray | None = None
                        where = f" from row {r}" if r else ""
                        for j, p in enumerate(planned):
                            n = (hi - lo) * row_size(p.type, ne0)
                            if pos[j] + n > p.nbytes:
                                raise GGQuantError(f"{p.name}: more bytes than planned ({pos[j] + n} > {p.nbytes})")
                            label = f"{ot.origin(ck)} -> {p.name} ({type_info(p.type).name}){where}"
                            if src.raw is not None and p.type == src.stored:  # as llama-quantize: copied as is
                                t.bufs[j][pos[j]:pos[j] + n] = src.raw[lo:hi].reshape(-1)
                            else:
                                if values is None:
                                    values = src.values(lo, hi, nthreads, label)
                                if j not in weights:
                                    weights[j] = imatrix_weights(p, jobs[j].imatrix)
                                w = weights[j]
                                if w is not None and ix is not None:
                                    w = w[ix * ne0:(ix + 1) * ne0]
                                batch.jobs.append(QuantJob(values, p.type, t.bufs[j], pos[j], src.dtype, w, label))
                                batch.owners.append(t)
                                t.left += 1
                            pos[j] += n
                        batch.nbytes += (hi - lo) * src.row_bytes
                        if batch.nbytes >= BATCH_BYTES:
                            batch.arrays.append(arr)
                            flush()
                batch.arrays.append(arr)
                del arr, src
            for j, p in enumerate(planned):
                if pos[j] != p.nbytes:
                    raise GGQuantError(f"{ot.origin(ck)}: produced {pos[j]} bytes for {p.name}, expected {p.nbytes}")
            t.queued = True
            hand_over()
        flush()
        wait_written(0)
    except BaseException:
        writer.shutdown(wait=True, cancel_futures=True)  # a write in progress ends before the files are removed
        prog.close()
        for job in jobs:
            job.sink.abort()
        raise
    writer.shutdown(wait=True)
    prog.close()
    for job in jobs:
        job.sink.close()


__all__ = ["BATCH_BYTES", "POOL_BYTES", "run_pass"]
