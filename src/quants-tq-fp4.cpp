// ===== TQ1_0 / TQ2_0 (ternary), Q1_0 / Q2_0 (1- and 2-bit) and MXFP4 / NVFP4 (E2M1 with an E8M0
// or UE4M3 scale): scalar reference kernels, operation by operation as ggml's reference code.
#include "ggq-fp16.h"
#include "iq-grids.h"
#include "quants-tq-fp4.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ggq {

namespace {

// MXFP4 shared scale: 2^(e - 127) / 2 (the code book holds doubled E2M1 values).
inline float e8m0_to_fp32_half(uint8_t x) {
    const uint32_t bits = x < 2 ? 0x00200000u << x : (uint32_t)(x - 1) << 23;
    return f32_from_bits(bits);
}

// NVFP4 scale: unsigned E4M3 (bias 7), halved like e8m0_to_fp32_half; 0x7f reads as zero.
inline float ue4m3_to_fp32(uint8_t x) {
    if (x == 0 || x == 0x7f) {
        return 0.0f;
    }
    const int exp = (x >> 3) & 0xf;
    const int man = x & 0x7;
    const float raw = exp == 0 ? std::ldexp((float)man, -9) : std::ldexp(1.0f + (float)man / 8.0f, exp - 7);
    return raw * 0.5f;
}

inline uint8_t fp32_to_ue4m3(float x) {
    if (!(x > 0.0f)) {
        return 0;
    }
    if (x > 448.0f) {
        x = 448.0f;
    }
    const uint32_t bits = f32_bits(x);
    const int fp32_exp = (int)((bits >> 23) & 0xff) - 127;
    const int fp32_man = (int)((bits >> 20) & 0x7);
    int exp = fp32_exp + 7;
    if (exp <= 0) {  // subnormal: man * 2^-9
        int man = (int)(x * 512.0f + 0.5f);
        if (man > 7) man = 7;
        return man < 1 ? 0 : (uint8_t)man;
    }
    if (exp >= 15) {
        return 0x7e;
    }
    int man = fp32_man + (int)((bits >> 19) & 1);
    if (man > 7) {
        man = 0;
        if (++exp >= 15) {
            return 0x7e;
        }
    }
    return (uint8_t)((exp << 3) | man);
}

// Code of the E2M1 value nearest to x at scale e (the first one on ties).
inline uint8_t best_index_fp4(float x, float e) {
    int best = 0;
    float best_err = std::fabs(kvalues_fp4[0] * e - x);
    for (int i = 1; i < 16; ++i) {
        const float err = std::fabs(kvalues_fp4[i] * e - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return (uint8_t)best;
}

// ggml's MAX(a, b) macro, (a > b ? a : b): a NaN in b wins, unlike std::max.
inline float ggml_max(float a, float b) { return a > b ? a : b; }

inline int trit(float v, float id) { return (int)std::lround(v * id) + 1; }  // -1, 0, 1 -> 0, 1, 2

}  // namespace

// ===== TQ1_0: 5 trits per byte (base 3, scaled to 0..255 by a ceiling division), d = max |x|

void quantize_row_tq1_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_tq1_0 *>(vy);
    constexpr int nqs = sizeof(y->qs);
    constexpr int nqh = sizeof(y->qh);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; ++j) amax = ggml_max(amax, std::fabs(x[j]));
        const float d = amax;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < nqs - nqs % 32; j += 32, x += 5 * 32) {
            for (int m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (int n = 0; n < 5; ++n) q = (uint8_t)(q * 3 + trit(x[m + n * 32], id));
                y[i].qs[j + m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
            }
        }
        for (int j = nqs - nqs % 32; j < nqs; j += 16, x += 5 * 16) {
            for (int m = 0; m < 16; ++m) {
                uint8_t q = 0;
                for (int n = 0; n < 5; ++n) q = (uint8_t)(q * 3 + trit(x[m + n * 16], id));
                y[i].qs[j + m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
            }
        }
        for (int j = 0; j < nqh; ++j) {
            uint8_t q = 0;
            for (int m = 0; m < 4; ++m) q = (uint8_t)(q * 3 + trit(x[j + m * nqh], id));
            q = (uint8_t)(q * 3);  // the first value goes to the most significant trit
            y[i].qh[j] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 4 * nqh;
    }
}

void dequantize_row_tq1_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_tq1_0 *>(vx);
    static constexpr uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};
    constexpr int nqs = sizeof(x->qs);
    constexpr int nqh = sizeof(x->qh);
    auto trit_of = [](uint8_t byte, int n) {
        const uint8_t q = (uint8_t)(byte * pow3[n]);
        return (float)((((uint16_t)q * 3) >> 8) - 1);
    };
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < nqs - nqs % 32; j += 32) {
            for (int n = 0; n < 5; ++n) {
                for (int m = 0; m < 32; ++m) *y++ = trit_of(x[i].qs[j + m], n) * d;
            }
        }
        for (int j = nqs - nqs % 32; j < nqs; j += 16) {
            for (int n = 0; n < 5; ++n) {
                for (int m = 0; m < 16; ++m) *y++ = trit_of(x[i].qs[j + m], n) * d;
            }
        }
        for (int n = 0; n < 4; ++n) {
            for (int j = 0; j < nqh; ++j) *y++ = trit_of(x[i].qh[j], n) * d;
        }
    }
}

size_t quantize_tq1_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_tq1_0, QK_K, quantize_row_tq1_0_ref>(src, dst, nrows, n_per_row, imatrix);
}

// ===== TQ2_0: 2 bits per trit, 4 per byte, d = max |x|

void quantize_row_tq2_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_tq2_0 *>(vy);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; ++j) amax = ggml_max(amax, std::fabs(x[j]));
        const float d = amax;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < (int)sizeof(y->qs); j += 32, x += 4 * 32) {
            for (int m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (int n = 0; n < 4; ++n) q = (uint8_t)(q + ((trit(x[m + n * 32], id) & 3) << (2 * n)));
                y[i].qs[j + m] = q;
            }
        }
    }
}

void dequantize_row_tq2_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_tq2_0 *>(vx);
    for (int64_t i = 0; i < k / QK_K; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < (int)sizeof(x->qs); j += 32) {
            for (int l = 0; l < 4; ++l) {
                for (int m = 0; m < 32; ++m) *y++ = (float)(((x[i].qs[j + m] >> (2 * l)) & 3) - 1) * d;
            }
        }
    }
}

size_t quantize_tq2_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_tq2_0, QK_K, quantize_row_tq2_0_ref>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q1_0: sign bits, d = mean |x|

void quantize_row_q1_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q1_0 *>(vy);
    for (int64_t i = 0; i < k / QK1_0; ++i, x += QK1_0) {
        float sum_abs = 0.0f;
        for (int j = 0; j < QK1_0; ++j) sum_abs += std::fabs(x[j]);
        y[i].d = fp32_to_fp16(sum_abs / QK1_0);
        std::memset(y[i].qs, 0, sizeof y[i].qs);
        for (int j = 0; j < QK1_0; ++j) {
            if (x[j] >= 0.0f) y[i].qs[j / 8] |= (uint8_t)(1 << (j % 8));
        }
    }
}

void dequantize_row_q1_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q1_0 *>(vx);
    for (int64_t i = 0; i < k / QK1_0; ++i, y += QK1_0) {
        float d = fp16_to_fp32(x[i].d);
        if (std::isnan(d)) {
            d = f32_from_bits(f32_bits(d) | 0x00400000u);  // ggml's fp16 conversion quiets a signalling NaN
        }
        for (int j = 0; j < QK1_0; ++j) y[j] = (x[i].qs[j / 8] >> (j % 8)) & 1 ? d : -d;
    }
}

size_t quantize_q1_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_q1_0, QK1_0, quantize_row_q1_0_ref>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q2_0: codes -1, 0, 1, 2 times d = max |x|

void quantize_row_q2_0_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q2_0 *>(vy);
    for (int64_t i = 0; i < k / QK2_0; ++i, x += QK2_0) {
        const float d = abs_max(x, QK2_0);
        const float id = d > 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        std::memset(y[i].qs, 0, sizeof y[i].qs);
        for (int j = 0; j < QK2_0; ++j) {
            const int q = std::clamp((int)std::round(x[j] * id) + 1, 0, 3);
            y[i].qs[j / 4] |= (uint8_t)(q << ((j % 4) * 2));
        }
    }
}

void dequantize_row_q2_0(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q2_0 *>(vx);
    for (int64_t i = 0; i < k / QK2_0; ++i, y += QK2_0) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK2_0; ++j) y[j] = (((x[i].qs[j / 4] >> ((j % 4) * 2)) & 3) - 1) * d;
    }
}

size_t quantize_q2_0(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_q2_0, QK2_0, quantize_row_q2_0_ref>(src, dst, nrows, n_per_row, imatrix);
}

// ===== MXFP4: E2M1 codes with a shared power-of-two scale per 32 values

void quantize_row_mxfp4_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_mxfp4 *>(vy);
    for (int64_t i = 0; i < k / QK_MXFP4; ++i, x += QK_MXFP4) {
        const float amax = abs_max(x, QK_MXFP4);
        // the float -> uint8_t conversion of ggml's C code goes through a 32-bit integer on every
        // compiler that matters; spell that out (it only matters for tiny blocks that wrap)
        const uint8_t e = amax > 0.0f ? (uint8_t)(int32_t)(std::floor(std::log2(amax)) - 2 + 127) : 0;
        const float d = e8m0_to_fp32_half(e);
        y[i].e = e;
        for (int j = 0; j < QK_MXFP4 / 2; ++j) {
            y[i].qs[j] = (uint8_t)(best_index_fp4(x[j], d) | (best_index_fp4(x[QK_MXFP4 / 2 + j], d) << 4));
        }
    }
}

void dequantize_row_mxfp4(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_mxfp4 *>(vx);
    for (int64_t i = 0; i < k / QK_MXFP4; ++i, y += QK_MXFP4) {
        const float d = e8m0_to_fp32_half(x[i].e);
        for (int j = 0; j < QK_MXFP4 / 2; ++j) {
            y[j] = kvalues_fp4[x[i].qs[j] & 0x0f] * d;
            y[j + QK_MXFP4 / 2] = kvalues_fp4[x[i].qs[j] >> 4] * d;
        }
    }
}

size_t quantize_mxfp4(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_mxfp4, QK_MXFP4, quantize_row_mxfp4_ref>(src, dst, nrows, n_per_row, imatrix);
}

// ===== NVFP4: E2M1 codes with a UE4M3 scale per 16 values, 64 values per block

void quantize_row_nvfp4_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_nvfp4 *>(vy);
    constexpr int nsub = QK_NVFP4 / QK_NVFP4_SUB;
    for (int64_t i = 0; i < k / QK_NVFP4; ++i) {
        for (int s = 0; s < nsub; ++s, x += QK_NVFP4_SUB) {
            const uint8_t ue = fp32_to_ue4m3(abs_max(x, QK_NVFP4_SUB) / 6.0f);  // the largest E2M1 value is 6
            y[i].d[s] = ue;
            const float d = ue4m3_to_fp32(ue);
            for (int j = 0; j < QK_NVFP4_SUB / 2; ++j) {
                y[i].qs[s * (QK_NVFP4_SUB / 2) + j] =
                    (uint8_t)(best_index_fp4(x[j], d) | (best_index_fp4(x[QK_NVFP4_SUB / 2 + j], d) << 4));
            }
        }
    }
}

void dequantize_row_nvfp4(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_nvfp4 *>(vx);
    constexpr int nsub = QK_NVFP4 / QK_NVFP4_SUB;
    for (int64_t i = 0; i < k / QK_NVFP4; ++i) {
        for (int s = 0; s < nsub; ++s, y += QK_NVFP4_SUB) {
            const float d = ue4m3_to_fp32(x[i].d[s]);
            for (int j = 0; j < QK_NVFP4_SUB / 2; ++j) {
                const uint8_t q = x[i].qs[s * (QK_NVFP4_SUB / 2) + j];
                y[j] = kvalues_fp4[q & 0x0f] * d;
                y[j + QK_NVFP4_SUB / 2] = kvalues_fp4[q >> 4] * d;
            }
        }
    }
}

size_t quantize_nvfp4(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref<block_nvfp4, QK_NVFP4, quantize_row_nvfp4_ref>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
