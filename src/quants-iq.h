// IQ formats: IQ4_NL / IQ4_XS quantize and dequantize; IQ2 / IQ3 / IQ1 dequantize; and the
// ternary, 1/2-bit and FP4 formats (TQ1_0, TQ2_0, Q1_0, Q2_0, MXFP4, NVFP4).
#pragma once

#include "ggq-common.h"

#include <cstddef>
#include <cstdint>

namespace ggq {

// ===== IQ4_NL / IQ4_XS (reference)

void quantize_row_iq4_nl_ref(const float * x, void * y, int64_t k);
void quantize_row_iq4_xs_ref(const float * x, void * y, int64_t k);
void dequantize_row_iq4_nl(const void * x, float * y, int64_t k);
void dequantize_row_iq4_xs(const void * x, float * y, int64_t k);
size_t quantize_iq4_nl(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq4_xs(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

// Vector versions (same bytes as the reference), compiled only on x86-64.
size_t quantize_iq4_nl_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq4_xs_avx2(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq4_nl_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_iq4_xs_avx512(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

// ===== IQ2 / IQ3 / IQ1: dequantize only

void dequantize_row_iq2_xxs(const void * x, float * y, int64_t k);
void dequantize_row_iq2_xs(const void * x, float * y, int64_t k);
void dequantize_row_iq2_s(const void * x, float * y, int64_t k);
void dequantize_row_iq3_xxs(const void * x, float * y, int64_t k);
void dequantize_row_iq3_s(const void * x, float * y, int64_t k);
void dequantize_row_iq1_s(const void * x, float * y, int64_t k);
void dequantize_row_iq1_m(const void * x, float * y, int64_t k);

// ===== TQ1_0 / TQ2_0 / Q1_0 / Q2_0 / MXFP4 / NVFP4 (quants-tq-fp4.cpp)

void quantize_row_tq1_0_ref(const float * x, void * y, int64_t k);
void quantize_row_tq2_0_ref(const float * x, void * y, int64_t k);
void quantize_row_q1_0_ref(const float * x, void * y, int64_t k);
void quantize_row_q2_0_ref(const float * x, void * y, int64_t k);
void quantize_row_mxfp4_ref(const float * x, void * y, int64_t k);
void quantize_row_nvfp4_ref(const float * x, void * y, int64_t k);
void dequantize_row_tq1_0(const void * x, float * y, int64_t k);
void dequantize_row_tq2_0(const void * x, float * y, int64_t k);
void dequantize_row_q1_0(const void * x, float * y, int64_t k);
void dequantize_row_q2_0(const void * x, float * y, int64_t k);
void dequantize_row_mxfp4(const void * x, float * y, int64_t k);
void dequantize_row_nvfp4(const void * x, float * y, int64_t k);
size_t quantize_tq1_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_tq2_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q1_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_q2_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_mxfp4(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
size_t quantize_nvfp4(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

}  // namespace ggq
