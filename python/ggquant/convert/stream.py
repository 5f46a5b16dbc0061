"""The converter's tensor loop, overlapped: source rows go from the memory map straight into the
kernels (:func:`ggquant.batch.quantize_batch`: bf16/f16/FP8 read in place, no float32 copy), their
blocks straight into each output's tensor buffer, and a writer thread writes finished tensors while
the next ones are quantized. Small tensors are quantized together in one parallel call; big ones in
row chunks whose pages are released as they are done. One read of each tensor serves every output.

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
from ..qtypes import type_info
from ..quants import dequantize, row_size
from .core import Job, Progress, imatrix_weights

#: source bytes per kernel call: small tensors are gathered up to this, big ones cut into row chunks
#: of at most this (their mapped pages are released after each chunk)
BATCH_BYTES = 64 << 20

#: written buffers kept for reuse (fresh pages cost the kernel a fault and zeroing each)
POOL_BYTES = 128 << 20

_DIRECT = ("F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")  # what the kernels read as stored


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


def _readable(arr: np.ndarray, dtype: str) -> tuple[np.ndarray, str]:
    # float64 and integer storage are widened here (as convert_hf_to_gguf.py casts them); the rest is read as stored
    if dtype in _DIRECT:
        return arr, dtype
    return np.asarray(to_compute_dtype(arr, dtype), np.float32), "F32"


def run_pass(tensors: Sequence[OutTensor], jobs: Sequence[Job], ck: Checkpoint | None, *,
             nthreads: int | None = None, quiet: bool = False,
             on_tensor: Callable[[OutTensor], None] | None = None) -> None:
    """Read every tensor once and write it to every job's sink, reading, quantizing and writing
    overlapped; all sinks are closed at the end or aborted on any error (no partial output).

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
            weights = [imatrix_weights(p, job.imatrix) for p, job in zip(planned, jobs)]
            t = _Tensor(i, [pool.take(p.nbytes) for p in planned])
            inflight.append(t)
            pos = [0] * len(jobs)
            ne0 = ot.shape[-1]
            n_exp = ot.shape[0] if len(ot.shape) == 3 else 1
            whole = len(ot.parts) == 1
            for k, part in enumerate(ot.parts):
                try:
                    arr, dtype = part()
                    if ot.stored_type is not None:  # blocks: copied where planned so, the others read dequantized
                        for j, p in enumerate(planned):
                            if p.type == ot.stored_type:
                                t.bufs[j][pos[j]:pos[j] + arr.nbytes] = arr.reshape(-1).view(np.uint8)
                                pos[j] += arr.nbytes
                        if all(p.type == ot.stored_type for p in planned):
                            continue
                        arr, dtype = dequantize(arr, ot.stored_type), "F32"
                    arr, dtype = _readable(arr, dtype)
                except GGQuantError:
                    raise
                except Exception as e:
                    raise FormatError(f"{ot.origin(ck)}: cannot read {ot.name}: {e}") from e
                # a 3-D tensor given whole goes one expert (and imatrix slice) at a time
                subs = [(arr[e], e) for e in range(n_exp)] if whole and n_exp > 1 else [(arr, None if whole else k)]
                for a, ix in subs:
                    rows = a.reshape(-1, a.shape[-1]) if a.ndim != 1 else a.reshape(1, -1)
                    step = max(1, BATCH_BYTES // max(1, rows.shape[1] * rows.itemsize))
                    for r in range(0, rows.shape[0], step):
                        chunk = rows[r:r + step]
                        for j, p in enumerate(planned):
                            if p.type == ot.stored_type:
                                continue
                            w = weights[j]
                            if w is not None and ix is not None:
                                w = w[ix * ne0:(ix + 1) * ne0]
                            where = f" from row {r}" if r else ""
                            batch.jobs.append(QuantJob(chunk, p.type, t.bufs[j], pos[j], dtype, w,
                                                       f"{ot.origin(ck)} -> {p.name} ({type_info(p.type).name}){where}"))
                            n = chunk.shape[0] * row_size(p.type, ne0)
                            if pos[j] + n > p.nbytes:
                                raise GGQuantError(f"{p.name}: more bytes than planned ({pos[j] + n} > {p.nbytes})")
                            pos[j] += n
                            batch.owners.append(t)
                            t.left += 1
                        batch.nbytes += chunk.nbytes
                        if batch.nbytes >= BATCH_BYTES:
                            batch.arrays.append(arr)
                            flush()
                batch.arrays.append(arr)
                del arr, subs
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
