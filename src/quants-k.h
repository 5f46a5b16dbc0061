// K-quants (super-blocks of 256): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Scalar reference kernels,
// bit-identical to ggml's quantize_row_<t>_ref (no importance weights) and quantize_<t> (with).
#pragma once

#include "ggq-common.h"

#include <cstddef>
#include <cstdint>

namespace ggq {

void quantize_row_q2_K_ref(const float * x, void * y, int64_t k);
void quantize_row_q3_K_ref(const float * x, void * y, int64_t k);
void quantize_row_q4_K_ref(const float * x, void * y, int64_t k);
void quantize_row_q5_K_ref(const float * x, void * y, int64_t k);
void quantize_row_q6_K_ref(const float * x, void * y, int64_t k);

void dequantize_row_q2_K(const void * x, float * y, int64_t k);
void dequantize_row_q3_K(const void * x, float * y, int64_t k);
void dequantize_row_q4_K(const void * x, float * y, int64_t k);
void dequantize_row_q5_K(const void * x, float * y, int64_t k);
void dequantize_row_q6_K(const void * x, float * y, int64_t k);

// imatrix null: the _ref path on all rows; otherwise ggml's weighted search per row.
size_t quantize_q2_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q3_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q6_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

// Weighted legacy quantizers (imatrix required, non-null): ggml's quantize_row_q4_0_impl ..
// quantize_row_q5_1_impl, which reuse the K-quant scale searches. quantize_q4_0 etc. call these
// when given importance weights.
size_t quantize_q4_0_imatrix(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_1_imatrix(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_0_imatrix(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_1_imatrix(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

}  // namespace ggq
