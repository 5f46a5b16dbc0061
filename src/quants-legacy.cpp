// ===== F32 / F16 / BF16 and the legacy block-of-32 formats: scalar reference kernels, and the
// weighted Q4_0..Q5_1 quantizers (ggml's quantize_row_<t>_impl on the K-quant scale searches).
// The arithmetic follows ggml's reference quantizers operation by operation (this file is built
// with -ffp-contract=off so that no multiply-add is fused), which is what makes the bytes equal.
#include "quants-legacy.h"

#include "ggq-fp16.h"
#include "quants-k-search.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace ggq {

// ===== Weighted Q4_0 / Q4_1 / Q5_0 / Q5_1 (ggml's quantize_row_<t>_impl)

namespace legacy {

float row_sigma2(const float * x, int64_t n) {
    float sum_x2 = 0;
    for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
    return sum_x2 / (float)n;
}

namespace {

void pack_4bit_32(const uint8_t * L, uint8_t * qs) {
    for (int j = 0; j < 16; ++j) qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

// 32 five-bit values: low nibbles into qs (x[j] | x[j+16] << 4), fifth bits into qh.
void pack_5bit_32(const uint8_t * L, uint8_t * qs, uint8_t * qh_out) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const uint8_t xi0 = L[j];
        const uint8_t xi1 = L[j + 16];
        qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
        qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
        qh |= ((xi1 & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(qh_out, &qh, sizeof qh);
}

}  // namespace

void finish_q4_0_w(float d, const uint8_t * L, block_q4_0 & b) {
    b.d = fp32_to_fp16(d);
    pack_4bit_32(L, b.qs);
}

void finish_q4_1_w(float d, float the_min, const uint8_t * L, block_q4_1 & b) {
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(-the_min);
    pack_4bit_32(L, b.qs);
}

void finish_q5_0_w(float d, const uint8_t * L, block_q5_0 & b) {
    b.d = fp32_to_fp16(d);
    pack_5bit_32(L, b.qs, b.qh);
}

void finish_q5_1_w(float d, float the_min, const uint8_t * L, block_q5_1 & b) {
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(-the_min);
    pack_5bit_32(L, b.qs, b.qh);
}

}  // namespace legacy

namespace {

// One weighted legacy block: weights qw * sqrt(sigma2 + x^2), then the type's search. NMAX is
// make_qx_quants' half range (Q4_0: 8, Q5_0: 16) or make_qkx3_quants' top level (Q4_1: 15, Q5_1: 31).
template <typename Block, int NMAX, bool AFFINE>
void legacy_block_weighted(const float * xb, const float * qw, float sigma2, Block & b) {
    float weight[32];
    uint8_t L[32];
    for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    if constexpr (AFFINE) {
        uint8_t Laux[32];
        float the_min;
        const float d = kq::make_qkx3_quants(32, NMAX, xb, weight, L, &the_min, Laux, -0.9f, 0.05f, 36, false);
        if constexpr (NMAX == 15) {
            legacy::finish_q4_1_w(d, the_min, L, b);
        } else {
            legacy::finish_q5_1_w(d, the_min, L, b);
        }
    } else {
        const float d = kq::make_qx_quants(32, NMAX, xb, reinterpret_cast<int8_t *>(L), 1, weight);
        if constexpr (NMAX == 8) {
            legacy::finish_q4_0_w(d, L, b);
        } else {
            legacy::finish_q5_0_w(d, L, b);
        }
    }
}

template <typename Block, int NMAX, bool AFFINE>
size_t legacy_rows_weighted(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / 32;
    auto * y = static_cast<Block *>(dst);
    for (int64_t r = 0; r < nrows; ++r) {
        const float * x = src + r * n_per_row;
        const float sigma2 = legacy::row_sigma2(x, n_per_row);
        for (int64_t ib = 0; ib < nb; ++ib) {
            legacy_block_weighted<Block, NMAX, AFFINE>(x + 32 * ib, imatrix + 32 * ib, sigma2, y[r * nb + ib]);
        }
    }
    return (size_t)nrows * (size_t)nb * sizeof(Block);
}

// The min and max of a block of 32 as ggml's scan finds them (FLT_MAX / -FLT_MAX if all are NaN).
void min_max_32(const float * x, float & min, float & max) {
    min = FLT_MAX;
    max = -FLT_MAX;
    for (int j = 0; j < 32; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
}

}  // namespace

// ===== F32 / F16 / BF16

void quantize_row_f32_ref(const float * x, void * y, int64_t k) { std::memcpy(y, x, (size_t)k * sizeof(float)); }

void quantize_row_f16_ref(const float * x, void * y, int64_t k) {
    auto * out = static_cast<ggml_half *>(y);
    for (int64_t i = 0; i < k; ++i) {
        out[i] = fp32_to_fp16(x[i]);
    }
}

void quantize_row_bf16_ref(const float * x, void * y, int64_t k) {
    auto * out = static_cast<ggml_bf16 *>(y);
    for (int64_t i = 0; i < k; ++i) {
        out[i] = fp32_to_bf16(x[i]);
    }
}

void dequantize_row_f32(const void * x, float * y, int64_t k) { std::memcpy(y, x, (size_t)k * sizeof(float)); }

void dequantize_row_f16(const void * x, float * y, int64_t k) {
    const auto * in = static_cast<const ggml_half *>(x);
    for (int64_t i = 0; i < k; ++i) {
        y[i] = fp16_to_fp32(in[i]);
    }
}

void dequantize_row_bf16(const void * x, float * y, int64_t k) {
    const auto * in = static_cast<const ggml_bf16 *>(x);
    for (int64_t i = 0; i < k; ++i) {
        y[i] = bf16_to_fp32(in[i]);
    }
}

size_t quantize_f32(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<float, 1, quantize_row_f32_ref>(src, dst, nrows, n_per_row, imatrix);
}

size_t quantize_f16(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<ggml_half, 1, quantize_row_f16_ref>(src, dst, nrows, n_per_row, imatrix);
}

size_t quantize_bf16(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<ggml_bf16, 1, quantize_row_bf16_ref>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q4_0: d = max / -8, q = x/d + 8 (the signed value of largest magnitude maps to -8)

void quantize_row_q4_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q4_0 *>(vy);
    const int64_t nb = k / QK4_0;
    for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
        float amax;
        const float max = max_by_magnitude(x, QK4_0, amax);  // first of equal magnitudes wins
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK4_0 / 2 + j] * id;
            const uint8_t q0 = (uint8_t)std::min<int>(15, (int8_t)(x0 + 8.5f));
            const uint8_t q1 = (uint8_t)std::min<int>(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void dequantize_row_q4_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q4_0 *>(vx);
    const int64_t nb = k / QK4_0;
    for (int64_t i = 0; i < nb; ++i, y += QK4_0) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            y[j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[QK4_0 / 2 + j] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

size_t quantize_q4_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q4_0, QK4_0, quantize_row_q4_0_ref, legacy_rows_weighted<block_q4_0, 8, false>>(
        src, dst, nrows, n_per_row, imatrix);
}

// ===== Q4_1: d = (max - min) / 15, m = min, q = (x - min)/d

void quantize_row_q4_1_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q4_1 *>(vy);
    const int64_t nb = k / QK4_1;
    for (int64_t i = 0; i < nb; ++i, x += QK4_1) {
        float min, max;
        min_max_32(x, min, max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK4_1 / 2 + j] - min) * id;
            const uint8_t q0 = (uint8_t)std::min<int>(15, (int8_t)(x0 + 0.5f));
            const uint8_t q1 = (uint8_t)std::min<int>(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void dequantize_row_q4_1(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q4_1 *>(vx);
    const int64_t nb = k / QK4_1;
    for (int64_t i = 0; i < nb; ++i, y += QK4_1) {
        const float d = fp16_to_fp32(x[i].d);
        const float m = fp16_to_fp32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            y[j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[QK4_1 / 2 + j] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

size_t quantize_q4_1(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q4_1, QK4_1, quantize_row_q4_1_ref, legacy_rows_weighted<block_q4_1, 15, true>>(
        src, dst, nrows, n_per_row, imatrix);
}

// ===== Q5_0: d = max / -16, q = x/d + 16; the fifth bits go to qh

void quantize_row_q5_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q5_0 *>(vy);
    const int64_t nb = k / QK5_0;
    for (int64_t i = 0; i < nb; ++i, x += QK5_0) {
        float amax;
        const float max = max_by_magnitude(x, QK5_0, amax);  // first of equal magnitudes wins
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[QK5_0 / 2 + j] * id;
            const uint8_t q0 = (uint8_t)std::min<int>(31, (int8_t)(x0 + 16.5f));
            const uint8_t q1 = (uint8_t)std::min<int>(31, (int8_t)(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        std::memcpy(y[i].qh, &qh, sizeof qh);
    }
}

void dequantize_row_q5_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q5_0 *>(vx);
    const int64_t nb = k / QK5_0;
    for (int64_t i = 0; i < nb; ++i, y += QK5_0) {
        const float d = fp16_to_fp32(x[i].d);
        uint32_t qh;
        std::memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (float)(((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[QK5_0 / 2 + j] = (float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

size_t quantize_q5_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q5_0, QK5_0, quantize_row_q5_0_ref, legacy_rows_weighted<block_q5_0, 16, false>>(
        src, dst, nrows, n_per_row, imatrix);
}

// ===== Q5_1: d = (max - min) / 31, m = min

void quantize_row_q5_1_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q5_1 *>(vy);
    const int64_t nb = k / QK5_1;
    for (int64_t i = 0; i < nb; ++i, x += QK5_1) {
        float min, max;
        min_max_32(x, min, max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK5_1 / 2 + j] - min) * id;
            // no clamp here, as in ggml: (max - min) * id cannot round past 31.5
            const uint8_t q0 = (uint8_t)(x0 + 0.5f);
            const uint8_t q1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        std::memcpy(y[i].qh, &qh, sizeof qh);
    }
}

void dequantize_row_q5_1(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q5_1 *>(vx);
    const int64_t nb = k / QK5_1;
    for (int64_t i = 0; i < nb; ++i, y += QK5_1) {
        const float d = fp16_to_fp32(x[i].d);
        const float m = fp16_to_fp32(x[i].m);
        uint32_t qh;
        std::memcpy(&qh, x[i].qh, sizeof qh);
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (float)((x[i].qs[j] & 0x0F) | h0) * d + m;
            y[QK5_1 / 2 + j] = (float)((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

size_t quantize_q5_1(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q5_1, QK5_1, quantize_row_q5_1_ref, legacy_rows_weighted<block_q5_1, 31, true>>(
        src, dst, nrows, n_per_row, imatrix);
}

// ===== Q8_0: d = amax / 127, q = roundf(x/d)

void quantize_row_q8_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q8_0 *>(vy);
    const int64_t nb = k / QK8_0;
    for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) {
            const float v = std::fabs(x[j]);
            amax = amax > v ? amax : v;  // ggml's MAX(): a NaN propagates
        }
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; ++j) {
            y[i].qs[j] = (int8_t)std::round(x[j] * id);
        }
    }
}

void dequantize_row_q8_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q8_0 *>(vx);
    const int64_t nb = k / QK8_0;
    for (int64_t i = 0; i < nb; ++i, y += QK8_0) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) {
            y[j] = (float)x[i].qs[j] * d;
        }
    }
}

// ggml's q8_0 has no weighted variant: importance weights are accepted and ignored.
size_t quantize_q8_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_q8_0, QK8_0, quantize_row_q8_0_ref>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
