// The type table: one row per ggml type id drives names, sizes and kernel dispatch.
#pragma once

#include "ggq-simd.h"

#include <cstddef>
#include <cstdint>

namespace ggq {

// Values are ggml's enum ggml_type ids; retired ids stay reserved so that no id ever shifts.
enum ggq_type : int32_t {
    GGQ_TYPE_F32 = 0,
    GGQ_TYPE_F16 = 1,
    GGQ_TYPE_Q4_0 = 2,
    GGQ_TYPE_Q4_1 = 3,
    // 4, 5: retired (Q4_2, Q4_3)
    GGQ_TYPE_Q5_0 = 6,
    GGQ_TYPE_Q5_1 = 7,
    GGQ_TYPE_Q8_0 = 8,
    GGQ_TYPE_Q8_1 = 9,
    GGQ_TYPE_Q2_K = 10,
    GGQ_TYPE_Q3_K = 11,
    GGQ_TYPE_Q4_K = 12,
    GGQ_TYPE_Q5_K = 13,
    GGQ_TYPE_Q6_K = 14,
    GGQ_TYPE_Q8_K = 15,
    GGQ_TYPE_IQ2_XXS = 16,
    GGQ_TYPE_IQ2_XS = 17,
    GGQ_TYPE_IQ3_XXS = 18,
    GGQ_TYPE_IQ1_S = 19,
    GGQ_TYPE_IQ4_NL = 20,
    GGQ_TYPE_IQ3_S = 21,
    GGQ_TYPE_IQ2_S = 22,
    GGQ_TYPE_IQ4_XS = 23,
    GGQ_TYPE_I8 = 24,
    GGQ_TYPE_I16 = 25,
    GGQ_TYPE_I32 = 26,
    GGQ_TYPE_I64 = 27,
    GGQ_TYPE_F64 = 28,
    GGQ_TYPE_IQ1_M = 29,
    GGQ_TYPE_BF16 = 30,
    // 31..33: retired (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8)
    GGQ_TYPE_TQ1_0 = 34,
    GGQ_TYPE_TQ2_0 = 35,
    // 36..38: retired (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8)
    GGQ_TYPE_MXFP4 = 39,
    GGQ_TYPE_NVFP4 = 40,
    GGQ_TYPE_Q1_0 = 41,
    GGQ_TYPE_Q2_0 = 42,
    GGQ_TYPE_COUNT = 43,
};

using to_float_fn = void (*)(const void * src, float * dst, int64_t k);
using from_float_fn = void (*)(const float * src, void * dst, int64_t k);
// Quantizes nrows rows of n_per_row values; imatrix (n_per_row weights, may be null) as in
// ggml_quantize_chunk. Returns the bytes written.
using quantize_fn = size_t (*)(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);

struct type_traits {
    const char * name = "DEPRECATED";  // ggml's type name ("q4_K"); retired ids keep "DEPRECATED"
    int64_t blck_size = 0;             // 0 marks a retired id
    size_t type_size = 0;              // bytes per block
    bool is_quantized = false;
    bool requires_imatrix = false;     // ggml refuses to quantize these without an importance matrix
    to_float_fn to_float = nullptr;          // dequantize_row_<t>
    from_float_fn from_float_ref = nullptr;  // quantize_row_<t>_ref
    // Chunk quantizer per SIMD level. [GGQ_SIMD_GENERIC] is the reference (quantize_<t>); the others
    // must produce the same bytes and may be null where no vector version exists.
    quantize_fn quantize[GGQ_SIMD_COUNT] = {};
};

const type_traits & get_type_traits(int32_t type);  // throws ggq::error for ids outside the table
bool type_is_valid(int32_t type);                   // in range and not retired
// Throws (naming `fn`) unless `type` is a live id; returns its traits.
const type_traits & checked_type_traits(int32_t type, const char * fn);
// Bytes of one row of n values; throws when n is not a multiple of the block size or overflows.
size_t row_size(int32_t type, int64_t n);
// The quantizer in use for `type` at the active SIMD level (falls back towards the reference).
quantize_fn select_quantizer(int32_t type, simd_level level);

}  // namespace ggq
