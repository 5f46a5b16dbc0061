// Ternary (TQ1_0, TQ2_0), 1- and 2-bit (Q1_0, Q2_0) and FP4 (MXFP4, NVFP4) formats: scalar
// reference kernels (quants-tq-fp4.cpp). ggml has no weighted variant of these: importance
// weights are accepted and ignored.
#pragma once

#include "ggq-common.h"
#include "ggq-kernel.h"

namespace ggq {

row_quantize_t quantize_row_tq1_0_ref, quantize_row_tq2_0_ref, quantize_row_q1_0_ref, quantize_row_q2_0_ref,
    quantize_row_mxfp4_ref, quantize_row_nvfp4_ref;
row_dequantize_t dequantize_row_tq1_0, dequantize_row_tq2_0, dequantize_row_q1_0, dequantize_row_q2_0,
    dequantize_row_mxfp4, dequantize_row_nvfp4;
chunk_quantize_t quantize_tq1_0, quantize_tq2_0, quantize_q1_0, quantize_q2_0, quantize_mxfp4, quantize_nvfp4;

}  // namespace ggq
