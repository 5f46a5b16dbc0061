// Whole-tensor entry points: row-parallel quantize and dequantize over any type in the table.
#pragma once

#include "ggq-simd.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace ggq {

// Floating-point storage types (what the MLX kernels read and write).
enum class src_dtype { f32, f16, bf16 };

// What quantize_rows reads: the storage types plus the input-only FP8 formats (E4M3FN as
// torch.float8_e4m3fn, E5M2 with IEEE Inf/NaN), widened exactly by a table.
enum class row_dtype { f32, f16, bf16, f8_e4m3, f8_e5m2 };

size_t row_itemsize(row_dtype dtype);

struct quantize_options {
    const float * imatrix = nullptr;  // n_per_row non-negative weights, or null
    int nthreads = 0;                 // <= 0: get_num_threads()
    bool allow_nonfinite = false;     // otherwise NaN/Inf input raises error_kind::nonfinite
    int simd = -1;                    // < 0: the active level; else force this level
};

// Quantizes nrows x n_per_row values (row-major, C-contiguous) of `dtype` into `dst`, which must
// hold nrows * row_size(type, n_per_row) bytes. Returns the bytes written.
size_t quantize_rows(int32_t type, const void * src, row_dtype dtype, void * dst, int64_t nrows, int64_t n_per_row,
                     const quantize_options & opt);

// One tensor (or part of one) of a batch: nrows x n_per_row values of `dtype` at `src` become
// nrows * row_size(type, n_per_row) bytes at `dst`. `label` names it in error messages.
struct quantize_job {
    int32_t type = 0;
    const void * src = nullptr;
    row_dtype dtype = row_dtype::f32;
    void * dst = nullptr;
    int64_t nrows = 0;
    int64_t n_per_row = 0;
    const float * imatrix = nullptr;  // n_per_row weights, or null
    std::string label;
};

// Quantizes every job in one parallel loop over the row chunks of all of them, so that small
// tensors run alongside each other instead of one parallel loop each. opt.imatrix is ignored (each
// job has its own). Arguments are checked for all jobs before any row is quantized; an error names
// the job's label (for NaN/Inf: the first bad row of the first job that has one). The bytes are
// those of quantize_rows on each job alone, whatever the thread count.
void quantize_batch(const quantize_job * jobs, size_t njobs, const quantize_options & opt);

// Dequantizes nrows rows of row_size(type, n_per_row) bytes each into float32.
void dequantize_rows(int32_t type, const void * src, float * dst, int64_t nrows, int64_t n_per_row, int nthreads);

}  // namespace ggq
