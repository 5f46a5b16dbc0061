// IQ2 / IQ3 / IQ1 quantizers: weighted searches over ggml's lattice grids (IQ2_XXS, IQ2_XS, IQ2_S,
// IQ3_XXS, IQ3_S, IQ1_S, IQ1_M). Bit-identical to ggml_quantize_chunk. The grid maps and neighbour
// lists that ggml builds in ggml_quantize_init are built here on first use (thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ggq {

// Row references without importance weights (ggml has them for these three only).
void quantize_row_iq2_s_ref(const float * x, void * y, int64_t k);
void quantize_row_iq3_xxs_ref(const float * x, void * y, int64_t k);
void quantize_row_iq3_s_ref(const float * x, void * y, int64_t k);

// Chunk quantizers (imatrix: n_per_row weights or null). IQ2_XXS, IQ2_XS and IQ1_S need the
// imatrix; the type table marks them and the dispatcher refuses a null one before calling.
size_t quantize_iq2_xxs(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_xs(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_s(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq3_xxs(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq3_s(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq1_s(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq1_m(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

// Vector versions (same bytes): the nearest-grid-point searches run 8 or 16 candidates per instruction.
size_t quantize_iq2_xxs_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_xs_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_s_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq3_xxs_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq3_s_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq1_s_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq1_m_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_xxs_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_xs_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq2_s_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq3_xxs_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq3_s_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq1_s_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq1_m_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

}  // namespace ggq
