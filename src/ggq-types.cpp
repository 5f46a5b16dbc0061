#include "ggq-types.h"

#include "ggq-common.h"
#include "ggq-error.h"
#include "quants-k.h"
#include "quants-iq.h"
#include "quants-iq-grid.h"
#include "quants-legacy.h"
#include "quants-tq-fp4.h"

#include <array>
#include <limits>
#include <string>

namespace ggq {

namespace {

constexpr type_traits plain(const char * name, size_t size) {
    type_traits t;
    t.name = name;
    t.blck_size = 1;
    t.type_size = size;
    return t;
}

constexpr type_traits blocks(const char * name, int64_t blck, size_t size) {
    type_traits t;
    t.name = name;
    t.blck_size = blck;
    t.type_size = size;
    t.is_quantized = true;
    return t;
}

// Kernel columns: to_float, from_float_ref, and the chunk quantizer per SIMD level
// {generic (reference), avx2, avx512}.
constexpr type_traits with(type_traits t, to_float_fn to, from_float_fn from, quantize_fn q_generic,
                           quantize_fn q_avx2 = nullptr, quantize_fn q_avx512 = nullptr) {
    t.to_float = to;
    t.from_float_ref = from;
    t.quantize[GGQ_SIMD_GENERIC] = q_generic;
    t.quantize[GGQ_SIMD_AVX2] = q_avx2;
    t.quantize[GGQ_SIMD_AVX512] = q_avx512;
    return t;
}

#if defined(GGQUANT_X86_SIMD)
#define GGQ_X86(fn) fn
#else
#define GGQ_X86(fn) nullptr
#endif

constexpr std::array<type_traits, GGQ_TYPE_COUNT> make_table() {
    std::array<type_traits, GGQ_TYPE_COUNT> t{};  // unset rows stay retired placeholders
    t[GGQ_TYPE_F32]     = with(plain("f32", 4), dequantize_row_f32, quantize_row_f32_ref, quantize_f32);
    t[GGQ_TYPE_F16]     = with(plain("f16", 2), dequantize_row_f16, quantize_row_f16_ref, quantize_f16);
    t[GGQ_TYPE_BF16]    = with(plain("bf16", 2), dequantize_row_bf16, quantize_row_bf16_ref, quantize_bf16);
    t[GGQ_TYPE_Q4_0]    = with(blocks("q4_0", QK4_0, sizeof(block_q4_0)), dequantize_row_q4_0, quantize_row_q4_0_ref, quantize_q4_0,
                               GGQ_X86(quantize_q4_0_avx2), GGQ_X86(quantize_q4_0_avx512));
    t[GGQ_TYPE_Q4_1]    = with(blocks("q4_1", QK4_1, sizeof(block_q4_1)), dequantize_row_q4_1, quantize_row_q4_1_ref, quantize_q4_1,
                               GGQ_X86(quantize_q4_1_imatrix_avx2), GGQ_X86(quantize_q4_1_imatrix_avx512));
    t[GGQ_TYPE_Q5_0]    = with(blocks("q5_0", QK5_0, sizeof(block_q5_0)), dequantize_row_q5_0, quantize_row_q5_0_ref, quantize_q5_0,
                               GGQ_X86(quantize_q5_0_imatrix_avx2), GGQ_X86(quantize_q5_0_imatrix_avx512));
    t[GGQ_TYPE_Q5_1]    = with(blocks("q5_1", QK5_1, sizeof(block_q5_1)), dequantize_row_q5_1, quantize_row_q5_1_ref, quantize_q5_1,
                               GGQ_X86(quantize_q5_1_imatrix_avx2), GGQ_X86(quantize_q5_1_imatrix_avx512));
    t[GGQ_TYPE_Q8_0]    = with(blocks("q8_0", QK8_0, sizeof(block_q8_0)), dequantize_row_q8_0, quantize_row_q8_0_ref, quantize_q8_0,
                               GGQ_X86(quantize_q8_0_avx2), GGQ_X86(quantize_q8_0_avx512));
    t[GGQ_TYPE_Q8_1]    = blocks("q8_1", QK8_1, sizeof(block_q8_1));
    t[GGQ_TYPE_Q2_K]    = with(blocks("q2_K", QK_K, sizeof(block_q2_K)), dequantize_row_q2_K, quantize_row_q2_K_ref, quantize_q2_K,
                               GGQ_X86(quantize_q2_K_avx2), GGQ_X86(quantize_q2_K_avx512));
    t[GGQ_TYPE_Q3_K]    = with(blocks("q3_K", QK_K, sizeof(block_q3_K)), dequantize_row_q3_K, quantize_row_q3_K_ref, quantize_q3_K,
                               GGQ_X86(quantize_q3_K_avx2), GGQ_X86(quantize_q3_K_avx512));
    t[GGQ_TYPE_Q4_K]    = with(blocks("q4_K", QK_K, sizeof(block_q4_K)), dequantize_row_q4_K, quantize_row_q4_K_ref, quantize_q4_K,
                               GGQ_X86(quantize_q4_K_avx2), GGQ_X86(quantize_q4_K_avx512));
    t[GGQ_TYPE_Q5_K]    = with(blocks("q5_K", QK_K, sizeof(block_q5_K)), dequantize_row_q5_K, quantize_row_q5_K_ref, quantize_q5_K,
                               GGQ_X86(quantize_q5_K_avx2), GGQ_X86(quantize_q5_K_avx512));
    t[GGQ_TYPE_Q6_K]    = with(blocks("q6_K", QK_K, sizeof(block_q6_K)), dequantize_row_q6_K, quantize_row_q6_K_ref, quantize_q6_K,
                               GGQ_X86(quantize_q6_K_avx2), GGQ_X86(quantize_q6_K_avx512));
    t[GGQ_TYPE_Q8_K]    = blocks("q8_K", QK_K, sizeof(block_q8_K));
    t[GGQ_TYPE_IQ2_XXS] = with(blocks("iq2_xxs", QK_K, sizeof(block_iq2_xxs)), dequantize_row_iq2_xxs, nullptr, quantize_iq2_xxs,
                               GGQ_X86(quantize_iq2_xxs_avx2), GGQ_X86(quantize_iq2_xxs_avx512));
    t[GGQ_TYPE_IQ2_XS]  = with(blocks("iq2_xs", QK_K, sizeof(block_iq2_xs)), dequantize_row_iq2_xs, nullptr, quantize_iq2_xs,
                               GGQ_X86(quantize_iq2_xs_avx2), GGQ_X86(quantize_iq2_xs_avx512));
    t[GGQ_TYPE_IQ3_XXS] = with(blocks("iq3_xxs", QK_K, sizeof(block_iq3_xxs)), dequantize_row_iq3_xxs, quantize_row_iq3_xxs_ref, quantize_iq3_xxs,
                               GGQ_X86(quantize_iq3_xxs_avx2), GGQ_X86(quantize_iq3_xxs_avx512));
    t[GGQ_TYPE_IQ1_S]   = with(blocks("iq1_s", QK_K, sizeof(block_iq1_s)), dequantize_row_iq1_s, nullptr, quantize_iq1_s,
                               GGQ_X86(quantize_iq1_s_avx2), GGQ_X86(quantize_iq1_s_avx512));
    t[GGQ_TYPE_IQ4_NL]  = with(blocks("iq4_nl", QK4_NL, sizeof(block_iq4_nl)), dequantize_row_iq4_nl, quantize_row_iq4_nl_ref, quantize_iq4_nl,
                               GGQ_X86(quantize_iq4_nl_avx2), GGQ_X86(quantize_iq4_nl_avx512));
    t[GGQ_TYPE_IQ3_S]   = with(blocks("iq3_s", QK_K, sizeof(block_iq3_s)), dequantize_row_iq3_s, quantize_row_iq3_s_ref, quantize_iq3_s,
                               GGQ_X86(quantize_iq3_s_avx2), GGQ_X86(quantize_iq3_s_avx512));
    t[GGQ_TYPE_IQ2_S]   = with(blocks("iq2_s", QK_K, sizeof(block_iq2_s)), dequantize_row_iq2_s, quantize_row_iq2_s_ref, quantize_iq2_s,
                               GGQ_X86(quantize_iq2_s_avx2), GGQ_X86(quantize_iq2_s_avx512));
    t[GGQ_TYPE_IQ4_XS]  = with(blocks("iq4_xs", QK_K, sizeof(block_iq4_xs)), dequantize_row_iq4_xs, quantize_row_iq4_xs_ref, quantize_iq4_xs,
                               GGQ_X86(quantize_iq4_xs_avx2), GGQ_X86(quantize_iq4_xs_avx512));
    t[GGQ_TYPE_I8]      = plain("i8", 1);
    t[GGQ_TYPE_I16]     = plain("i16", 2);
    t[GGQ_TYPE_I32]     = plain("i32", 4);
    t[GGQ_TYPE_I64]     = plain("i64", 8);
    t[GGQ_TYPE_F64]     = plain("f64", 8);
    t[GGQ_TYPE_IQ1_M]   = with(blocks("iq1_m", QK_K, sizeof(block_iq1_m)), dequantize_row_iq1_m, nullptr, quantize_iq1_m,
                               GGQ_X86(quantize_iq1_m_avx2), GGQ_X86(quantize_iq1_m_avx512));
    t[GGQ_TYPE_TQ1_0]   = with(blocks("tq1_0", QK_K, sizeof(block_tq1_0)), dequantize_row_tq1_0, quantize_row_tq1_0_ref, quantize_tq1_0);
    t[GGQ_TYPE_TQ2_0]   = with(blocks("tq2_0", QK_K, sizeof(block_tq2_0)), dequantize_row_tq2_0, quantize_row_tq2_0_ref, quantize_tq2_0);
    t[GGQ_TYPE_MXFP4]   = with(blocks("mxfp4", QK_MXFP4, sizeof(block_mxfp4)), dequantize_row_mxfp4, quantize_row_mxfp4_ref, quantize_mxfp4);
    t[GGQ_TYPE_NVFP4]   = with(blocks("nvfp4", QK_NVFP4, sizeof(block_nvfp4)), dequantize_row_nvfp4, quantize_row_nvfp4_ref, quantize_nvfp4);
    t[GGQ_TYPE_Q1_0]    = with(blocks("q1_0", QK1_0, sizeof(block_q1_0)), dequantize_row_q1_0, quantize_row_q1_0_ref, quantize_q1_0);
    t[GGQ_TYPE_Q2_0]    = with(blocks("q2_0", QK2_0, sizeof(block_q2_0)), dequantize_row_q2_0, quantize_row_q2_0_ref, quantize_q2_0);
    t[GGQ_TYPE_IQ2_XXS].requires_imatrix = true;
    t[GGQ_TYPE_IQ2_XS].requires_imatrix = true;
    t[GGQ_TYPE_IQ1_S].requires_imatrix = true;
    return t;
}

constexpr std::array<type_traits, GGQ_TYPE_COUNT> k_type_traits = make_table();

}  // namespace

bool type_is_valid(int32_t type) { return type >= 0 && type < GGQ_TYPE_COUNT && k_type_traits[type].blck_size != 0; }

const type_traits & get_type_traits(int32_t type) {
    if (type < 0 || type >= GGQ_TYPE_COUNT) {
        fail(error_kind::type, "get_type_traits", "type id " + std::to_string(type) + " is outside 0.." + std::to_string(GGQ_TYPE_COUNT - 1));
    }
    return k_type_traits[type];
}

const type_traits & checked_type_traits(int32_t type, const char * fn) {
    if (!type_is_valid(type)) {
        fail(error_kind::type, fn, "type id " + std::to_string(type) + " is not a valid ggml type (unknown or retired)");
    }
    return k_type_traits[type];
}

size_t row_size(int32_t type, int64_t n) {
    const type_traits & t = checked_type_traits(type, "row_size");
    if (n < 0 || n % t.blck_size != 0) {
        fail(error_kind::shape, "row_size", std::string("row length ") + std::to_string(n) + " is not a multiple of the " +
                                                t.name + " block size " + std::to_string(t.blck_size));
    }
    const uint64_t nblocks = (uint64_t)(n / t.blck_size);
    if (nblocks > std::numeric_limits<size_t>::max() / t.type_size) {
        fail(error_kind::shape, "row_size", "row of " + std::to_string(n) + " values overflows the byte count");
    }
    return (size_t)nblocks * t.type_size;
}

quantize_fn select_quantizer(int32_t type, simd_level level) {
    const type_traits & t = checked_type_traits(type, "select_quantizer");
    for (int l = level; l > GGQ_SIMD_GENERIC; --l) {
        if (t.quantize[l] != nullptr) {
            return t.quantize[l];
        }
    }
    return t.quantize[GGQ_SIMD_GENERIC];
}

}  // namespace ggq
