// Whole-tensor entry points: row-parallel quantize and dequantize over any type in the table.
#pragma once

#include "ggq-simd.h"

#include <cstddef>
#include <cstdint>

namespace ggq {

enum class src_dtype { f32, f16, bf16 };

struct quantize_options {
    const float * imatrix = nullptr;  // n_per_row non-negative weights, or null
    int nthreads = 0;                 // <= 0: get_num_threads()
    bool allow_nonfinite = false;     // otherwise NaN/Inf input raises error_kind::nonfinite
    int simd = -1;                    // < 0: the active level; else force this level
};

// Quantizes nrows x n_per_row values (row-major, C-contiguous) of `dtype` into `dst`, which must
// hold nrows * row_size(type, n_per_row) bytes. Returns the bytes written.
size_t quantize_rows(int32_t type, const void * src, src_dtype dtype, void * dst, int64_t nrows, int64_t n_per_row,
                     const quantize_options & opt);

// Dequantizes nrows rows of row_size(type, n_per_row) bytes each into float32.
void dequantize_rows(int32_t type, const void * src, float * dst, int64_t nrows, int64_t n_per_row, int nthreads);

}  // namespace ggq
