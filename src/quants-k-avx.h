// Vector K-quant chunk quantizers (x86-64 only), same bytes as quantize_<t> in quants-k.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ggq {

size_t quantize_q2_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q3_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q6_K_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q2_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q3_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q6_K_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

// Weighted Q4_0..Q5_1: the vector search with importance weights; without them, the reference.
size_t quantize_q4_0_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_1_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_0_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_1_imatrix_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_0_imatrix_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q4_1_imatrix_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_0_imatrix_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q5_1_imatrix_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

}  // namespace ggq
