// ===== K-quants: Q2_K .. Q6_K scalar reference kernels.
// The quantizers follow ggml's reference (ggml-quants.c) operation by operation; see
// quants-k-search.h for the shared scale searches. Built with -ffp-contract=off: no mul+add is
// fused, and every sum keeps ggml's order. Scales written as fp16 are read back from the rounded
// fp16 value before the final requantization, as in ggml.
#include "quants-k.h"

#include "ggq-fp16.h"
#include "quants-k-internal.h"
#include "quants-k-search.h"

#include <cmath>
#include <cstring>
#include <type_traits>

namespace ggq {

using kq::imax;
using kq::imin;

namespace {

// The weighted chunk quantizer of a K-quant: its row quantizer Impl, row by row.
template <typename Block, void (*Impl)(const float *, Block *, int64_t, const float *)>
size_t quantize_rows_weighted(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const size_t rsize = (size_t)(n_per_row / QK_K) * sizeof(Block);
    char * out = static_cast<char *>(dst);
    for (int64_t r = 0; r < nrows; ++r) {
        Impl(src + r * n_per_row, reinterpret_cast<Block *>(out + (size_t)r * rsize), n_per_row, imatrix);
    }
    return (size_t)nrows * rsize;
}

// Four 2-bit values L[j + l + 32*s] (s = 0..3) per byte, for each half of the super-block.
void pack_2bit(const uint8_t * L, uint8_t * qs) {
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block.
inline void get_scale_min_k4(int j, const uint8_t * q, uint8_t * d, uint8_t * m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

// Packs eight 6-bit scales and mins into the 12 scale bytes of Q4_K/Q5_K.
inline void set_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t * s) {
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
}

// Packs sixteen 6-bit Q3_K scales (already offset by +32) into 12 bytes (zeroed by the caller).
inline void set_scale_q3_K(int j, int l, uint8_t * s) {
    if (j < 8) {
        s[j] = (uint8_t)(l & 0xF);
    } else {
        s[j - 8] |= (uint8_t)((l & 0xF) << 4);
    }
    l >>= 4;
    s[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
}

inline int8_t get_scale_q3_K(int j, const uint8_t * s) {
    int8_t sc = (int8_t)(j < 8 ? s[j] & 0xF : s[j - 8] >> 4);
    sc = (int8_t)((sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
    return sc;
}

// Final Q2_K/Q4_K/Q5_K pass: requantize each sub-block of `sub` values with the stored
// (fp16-rounded) scale and min, then leave L for packing.
inline void requantize_affine(const float * __restrict x, uint8_t * __restrict L, int sub, int nmax, float d, float dm) {
    for (int ii = 0; ii < sub; ++ii) {
        int l = nearest_int((x[ii] + dm) / d);
        L[ii] = (uint8_t)imax(0, imin(nmax, l));
    }
}

// Q3_K tail shared by the reference and weighted paths: requantize with the stored scales, then
// split off the high bit into hmask and pack the low two bits.
void finish_q3_K(const float * __restrict x, int8_t * __restrict L, block_q3_K & b) {
    const float dall = fp16_to_fp32(b.d);
    for (int j = 0; j < QK_K / 16; ++j) {
        const int8_t sc = get_scale_q3_K(j, b.scales);
        const float d = dall * (float)sc;
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = imax(-4, imin(3, l));
            L[16 * j + ii] = (int8_t)(l + 4);
        }
    }
    // the high bit of value j goes to bit j/32 of hmask[j%32] (branch-free: the bits are random)
    std::memset(b.hmask, 0, QK_K / 8);
    for (int k = 0; k < 8; ++k) {
        for (int m = 0; m < QK_K / 8; ++m) {
            const int j = 32 * k + m;
            const int hi = L[j] > 3;
            b.hmask[m] = (uint8_t)(b.hmask[m] | (hi << k));
            L[j] = (int8_t)(L[j] - 4 * hi);
        }
    }
    pack_2bit(reinterpret_cast<const uint8_t *>(L), b.qs);
}

// Q4_K / Q5_K: requantize each sub-block of 32 with its stored scale and min.
template <typename Block>
void requantize_q45_K(const float * __restrict x, uint8_t * __restrict L, int nmax, const Block & b) {
    const float dall = fp16_to_fp32(b.d);
    const float mall = fp16_to_fp32(b.dmin);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, b.scales, &sc, &m);
        const float d = dall * (float)sc;
        if (!d) continue;
        const float dm = mall * (float)m;
        requantize_affine(x + 32 * j, L + 32 * j, 32, nmax, d, dm);
    }
}

// Q4_K tail: requantize with the stored scales/mins and pack nibbles.
void finish_q4_K(const float * __restrict x, uint8_t * __restrict L, block_q4_K & b) {
    requantize_q45_K(x, L, 15, b);
    uint8_t * q = b.qs;
    for (int j = 0; j < QK_K; j += 64) {
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

// Q5_K tail: as Q4_K with a fifth bit per value in qh.
void finish_q5_K(const float * __restrict x, uint8_t * __restrict L, block_q5_K & b) {
    requantize_q45_K(x, L, 31, b);
    uint8_t * qh = b.qh;
    uint8_t * ql = b.qs;
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            int l2 = L[n + j + 32];
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
        ql += 32;
    }
}

// Q6_K tail: from the sixteen sub-block scales, choose the block scale, store int8 scales,
// requantize and pack. The block is all zero when every scale is negligible.
void finish_q6_K_block(const float * __restrict x, int8_t * __restrict L, const float * scales, block_q6_K & b) {
    float max_abs_scale;
    const float max_scale = max_by_magnitude(scales, QK_K / 16, max_abs_scale);
    if (max_abs_scale < kq::GROUP_MAX_EPS) {
        std::memset(&b, 0, sizeof(block_q6_K));
        b.d = fp32_to_fp16(0.f);
        return;
    }
    const float iscale = -128.f / max_scale;
    b.d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
        b.scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
    }
    const float dall = fp16_to_fp32(b.d);
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dall * (float)b.scales[j];
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = imax(-32, imin(31, l));
            L[16 * j + ii] = (int8_t)(l + 32);
        }
    }
    uint8_t * ql = b.ql;
    uint8_t * qh = b.qh;
    for (int j = 0; j < QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l + 0] & 0xF;
            const uint8_t q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF;
            const uint8_t q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

}  // namespace

namespace kq {

void finish_q6_K(const float * x, int8_t * L, const float * scales, block_q6_K & b) { finish_q6_K_block(x, L, scales, b); }

float superblock_sumsq(const float * x) {
    float s = 0;
    for (int j = 0; j < QK_K; ++j) s += x[j] * x[j];
    return s;
}

void finish_q2_K_ref(const float * x, uint8_t * L, const float * scales, const float * mins, block_q2_K & b) {
    const float q4scale = 15.f;
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = q4scale / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
        b.d = fp32_to_fp16(max_scale / q4scale);
    } else {
        for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = 0;
        b.d = fp32_to_fp16(0.f);
    }
    if (max_min > 0) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < QK_K / 16; ++j) {
            const int l = nearest_int(iscale * mins[j]);
            b.scales[j] = (uint8_t)(b.scales[j] | (l << 4));
        }
        b.dmin = fp32_to_fp16(max_min / q4scale);
    } else {
        b.dmin = fp32_to_fp16(0.f);
    }
    const float dall = fp16_to_fp32(b.d);
    const float mall = fp16_to_fp32(b.dmin);
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dall * (float)(b.scales[j] & 0xF);
        if (!d) continue;
        const float dm = mall * (float)(b.scales[j] >> 4);
        requantize_affine(x + 16 * j, L + 16 * j, 16, 3, d, dm);
    }
    pack_2bit(L, b.qs);
}

void finish_q2_K_impl(const float * x, uint8_t * L, const float * scales, const float * mins, const float * sw, block_q2_K & b) {
    uint8_t Ls[QK_K / 16], Lm[QK_K / 16];
    float dm = make_qp_quants(QK_K / 16, 15, scales, Ls, sw);
    float mm = make_qp_quants(QK_K / 16, 15, mins, Lm, sw);
    b.d = fp32_to_fp16(dm);
    b.dmin = fp32_to_fp16(mm);
    dm = fp16_to_fp32(b.d);
    mm = fp16_to_fp32(b.dmin);
    for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
    for (int j = 0; j < QK_K / 16; ++j) {
        const float d = dm * (float)(b.scales[j] & 0xF);
        if (!d) continue;
        const float m = mm * (float)(b.scales[j] >> 4);
        requantize_affine(x + 16 * j, L + 16 * j, 16, 3, d, m);
    }
    pack_2bit(L, b.qs);
}

void finish_q3_K_ref(const float * x, int8_t * L, const float * scales, block_q3_K & b) {
    float amax;
    const float max_scale = max_by_magnitude(scales, QK_K / 16, amax);
    std::memset(b.scales, 0, 12);
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < QK_K / 16; ++j) {
            int8_t l = (int8_t)nearest_int(iscale * scales[j]);
            l = (int8_t)(imax(-32, imin(31, l)) + 32);
            set_scale_q3_K(j, l, b.scales);
        }
        b.d = fp32_to_fp16(1 / iscale);
    } else {
        b.d = fp32_to_fp16(0.f);
    }
    finish_q3_K(x, L, b);
}

void finish_q3_K_impl(const float * x, int8_t * L, const float * scales, const float * sw, block_q3_K & b) {
    int8_t Ls[QK_K / 16];
    std::memset(b.scales, 0, 12);
    const float d_block = make_qx_quants(QK_K / 16, 32, scales, Ls, 1, sw);
    for (int j = 0; j < QK_K / 16; ++j) set_scale_q3_K(j, Ls[j], b.scales);
    b.d = fp32_to_fp16(d_block);
    finish_q3_K(x, L, b);
}

namespace {

// Q4_K / Q5_K reference: the largest scale and min set the 6-bit grids.
template <typename Block>
void scales_q45_K_ref(const float * scales, const float * mins, Block & b) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = (uint8_t)imin(63, ls);
        lm = (uint8_t)imin(63, lm);
        set_scale_min_k4(j, ls, lm, b.scales);
    }
    b.d = fp32_to_fp16(max_scale / 63.f);
    b.dmin = fp32_to_fp16(max_min / 63.f);
}

// Q4_K / Q5_K weighted: scales and mins quantized by make_qp_quants (Q5_K also clamps the codes).
template <typename Block, bool CLAMP63>
void scales_q45_K_impl(const float * scales, const float * mins, const float * sw, Block & b) {
    uint8_t Ls[QK_K / 32];
    uint8_t Lm[QK_K / 32];
    const float d_block = make_qp_quants(QK_K / 32, 63, scales, Ls, sw);
    const float m_block = make_qp_quants(QK_K / 32, 63, mins, Lm, sw);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = Ls[j];
        uint8_t lm = Lm[j];
        if (CLAMP63) {
            ls = (uint8_t)imin(63, ls);
            lm = (uint8_t)imin(63, lm);
        }
        set_scale_min_k4(j, ls, lm, b.scales);
    }
    b.d = fp32_to_fp16(d_block);
    b.dmin = fp32_to_fp16(m_block);
}

}  // namespace

void finish_q4_K_ref(const float * x, uint8_t * L, const float * scales, const float * mins, block_q4_K & b) {
    scales_q45_K_ref(scales, mins, b);
    finish_q4_K(x, L, b);
}

void finish_q4_K_impl(const float * x, uint8_t * L, const float * scales, const float * mins, const float * sw, block_q4_K & b) {
    scales_q45_K_impl<block_q4_K, false>(scales, mins, sw, b);
    finish_q4_K(x, L, b);
}

void finish_q5_K_ref(const float * x, uint8_t * L, const float * scales, const float * mins, block_q5_K & b) {
    scales_q45_K_ref(scales, mins, b);
    finish_q5_K(x, L, b);
}

void finish_q5_K_impl(const float * x, uint8_t * L, const float * scales, const float * mins, const float * sw, block_q5_K & b) {
    scales_q45_K_impl<block_q5_K, true>(scales, mins, sw, b);
    finish_q5_K(x, L, b);
}

}  // namespace kq

namespace {

// ----- weighted (imatrix) row quantizers: ggml's quantize_row_<t>_impl

void quantize_row_q2_K_impl(const float * x, block_q2_K * y, int64_t n_per_row, const float * quant_weights) {
    const int64_t nb = n_per_row / QK_K;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    float sw[QK_K / 16];
    float weight[16];

    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        const float sigma2 = kq::superblock_sumsq(x) / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            const float * qw = quant_weights + QK_K * i + 16 * j;
            for (int l = 0; l < 16; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float s = 0;
            for (int l = 0; l < 16; ++l) s += weight[l];
            sw[j] = s;
            scales[j] = kq::make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
        }
        kq::finish_q2_K_impl(x, L, scales, mins, sw, y[i]);
    }
}

void quantize_row_q3_K_impl(const float * x, block_q3_K * y, int64_t n_per_row, const float * quant_weights) {
    const int64_t nb = n_per_row / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float weight[16];
    float sw[QK_K / 16];

    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        const float sigma2 = 2 * kq::superblock_sumsq(x) / QK_K;
        for (int j = 0; j < QK_K / 16; ++j) {
            const float * qw = quant_weights + QK_K * i + 16 * j;
            for (int l = 0; l < 16; ++l) weight[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = kq::make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
        }
        kq::finish_q3_K_impl(x, L, scales, sw, y[i]);
    }
}

// Q4_K / Q5_K weighted search: per sub-block make_qkx3 with weights qw * sqrt(sigma2 + x^2).
template <int NMAX>
void search_q45_K_impl(const float * x, uint8_t * L, float * scales, float * mins, float * sw, int64_t i, const float * quant_weights) {
    uint8_t Laux[32];
    float weights[32];
    const float sigma2 = 2 * kq::superblock_sumsq(x) / QK_K;
    for (int j = 0; j < QK_K / 32; ++j) {
        const float * qw = quant_weights + QK_K * i + 32 * j;
        for (int l = 0; l < 32; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = kq::make_qkx3_quants(32, NMAX, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false);
    }
}

template <typename Block, int NMAX, void (*Finish)(const float *, uint8_t *, const float *, const float *, const float *, Block &)>
void quantize_row_q45_K_impl(const float * x, Block * y, int64_t n_per_row, const float * quant_weights) {
    const int64_t nb = n_per_row / QK_K;
    uint8_t L[QK_K];
    float scales[QK_K / 32], mins[QK_K / 32], sw[QK_K / 32];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        search_q45_K_impl<NMAX>(x, L, scales, mins, sw, i, quant_weights);
        Finish(x, L, scales, mins, sw, y[i]);
    }
}

constexpr auto quantize_row_q4_K_impl = &quantize_row_q45_K_impl<block_q4_K, 15, kq::finish_q4_K_impl>;
constexpr auto quantize_row_q5_K_impl = &quantize_row_q45_K_impl<block_q5_K, 31, kq::finish_q5_K_impl>;

void quantize_row_q6_K_impl(const float * x, block_q6_K * y, int64_t n_per_row, const float * quant_weights) {
    const int64_t nb = n_per_row / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            scales[ib] = kq::make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, quant_weights + QK_K * i + 16 * ib);
        }
        kq::finish_q6_K(x, L, scales, y[i]);
    }
}

// Q4_K / Q5_K reference search: per sub-block make_qkx2 with weights av_x + |x|.
template <int NMAX>
void search_q45_K_ref(const float * x, uint8_t * L, float * scales, float * mins, float rmin, float rdelta, int nstep) {
    uint8_t Laux[32];
    float weights[32];
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = kq::make_qkx2_quants(32, NMAX, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
    }
}

template <typename Block, int NMAX, void (*Finish)(const float *, uint8_t *, const float *, const float *, Block &)>
void quantize_row_q45_K_ref(const float * x, void * vy, int64_t k, float rmin, float rdelta, int nstep) {
    auto * y = static_cast<Block *>(vy);
    const int64_t nb = k / QK_K;
    uint8_t L[QK_K];
    float scales[QK_K / 32], mins[QK_K / 32];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        search_q45_K_ref<NMAX>(x, L, scales, mins, rmin, rdelta, nstep);
        Finish(x, L, scales, mins, y[i]);
    }
}

// Q4_K / Q5_K (the fifth bit of value l of pair p in bit 2p or 2p+1 of qh[l]).
template <typename Block>
void dequantize_row_q45_K(const void * vx, float * y, int64_t k) {
    constexpr bool Q5 = std::is_same_v<Block, block_q5_K>;
    const auto * x = static_cast<const Block *>(vx);
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t * ql = x[i].qs;
        const float d = fp16_to_fp32(x[i].d);
        const float min = fp16_to_fp32(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < QK_K; j += 64) {
            get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc;
            const float m1 = min * (float)m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc;
            const float m2 = min * (float)m;
            if constexpr (Q5) {
                const uint8_t * qh = x[i].qh;
                for (int l = 0; l < 32; ++l) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
                for (int l = 0; l < 32; ++l) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
                u1 = (uint8_t)(u1 << 2);
                u2 = (uint8_t)(u2 << 2);
            } else {
                for (int l = 0; l < 32; ++l) *y++ = d1 * (float)(ql[l] & 0xF) - m1;
                for (int l = 0; l < 32; ++l) *y++ = d2 * (float)(ql[l] >> 4) - m2;
            }
            ql += 32;
            is += 2;
        }
    }
}

}  // namespace

// ===== Q2_K: 16 sub-blocks of 16, 2-bit values, 4-bit scale and min per sub-block

void quantize_row_q2_K_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q2_K *>(vy);
    const int64_t nb = k / QK_K;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = kq::make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
        }
        kq::finish_q2_K_ref(x, L, scales, mins, y[i]);
    }
}

void dequantize_row_q2_K(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q2_K *>(vx);
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const float min = fp16_to_fp32(x[i].dmin);
        const uint8_t * q = x[i].qs;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                for (int half = 0; half < 2; ++half) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (float)(sc & 0xF);
                    const float ml = min * (float)(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
                }
                shift += 2;
            }
            q += 32;
        }
    }
}

size_t quantize_q2_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q2_K, QK_K, quantize_row_q2_K_ref,
                                         quantize_rows_weighted<block_q2_K, quantize_row_q2_K_impl>>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q3_K: 16 sub-blocks of 16, 3-bit values (2 low bits + hmask), signed 6-bit scales

void quantize_row_q3_K_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q3_K *>(vy);
    const int64_t nb = k / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        for (int j = 0; j < QK_K / 16; ++j) scales[j] = kq::make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
        kq::finish_q3_K_ref(x, L, scales, y[i]);
    }
}

void dequantize_row_q3_K(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q3_K *>(vx);
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d_all = fp16_to_fp32(x[i].d);
        const uint8_t * q = x[i].qs;
        const uint8_t * hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                for (int half = 0; half < 2; ++half) {
                    const float dl = d_all * (float)(get_scale_q3_K(is++, x[i].scales));
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        *y++ = dl * (float)((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                    }
                }
                shift += 2;
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

size_t quantize_q3_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q3_K, QK_K, quantize_row_q3_K_ref,
                                         quantize_rows_weighted<block_q3_K, quantize_row_q3_K_impl>>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q4_K: 8 sub-blocks of 32, 4-bit values, 6-bit scale and min per sub-block

void quantize_row_q4_K_ref(const float * x, void * vy, int64_t k) {
    quantize_row_q45_K_ref<block_q4_K, 15, kq::finish_q4_K_ref>(x, vy, k, -1.f, 0.1f, 20);
}

void dequantize_row_q4_K(const void * vx, float * y, int64_t k) { dequantize_row_q45_K<block_q4_K>(vx, y, k); }

size_t quantize_q4_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q4_K, QK_K, quantize_row_q4_K_ref,
                                         quantize_rows_weighted<block_q4_K, quantize_row_q4_K_impl>>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q5_K: as Q4_K with a fifth bit per value

void quantize_row_q5_K_ref(const float * x, void * vy, int64_t k) {
    quantize_row_q45_K_ref<block_q5_K, 31, kq::finish_q5_K_ref>(x, vy, k, -0.5f, 0.1f, 15);
}

void dequantize_row_q5_K(const void * vx, float * y, int64_t k) { dequantize_row_q45_K<block_q5_K>(vx, y, k); }

size_t quantize_q5_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q5_K, QK_K, quantize_row_q5_K_ref,
                                         quantize_rows_weighted<block_q5_K, quantize_row_q5_K_impl>>(src, dst, nrows, n_per_row, imatrix);
}

// ===== Q6_K: 16 sub-blocks of 16, 6-bit values, int8 scales

void quantize_row_q6_K_ref(const float * x, void * vy, int64_t k) {
    auto * y = static_cast<block_q6_K *>(vy);
    const int64_t nb = k / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        for (int ib = 0; ib < QK_K / 16; ++ib) scales[ib] = kq::make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, nullptr);
        kq::finish_q6_K(x, L, scales, y[i]);
    }
}

void dequantize_row_q6_K(const void * vx, float * y, int64_t k) {
    const auto * x = static_cast<const block_q6_K *>(vx);
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t * ql = x[i].ql;
        const uint8_t * qh = x[i].qh;
        const int8_t * sc = x[i].scales;
        for (int n = 0; n < QK_K; n += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

size_t quantize_q6_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    return quantize_rows_ref_or_weighted<block_q6_K, QK_K, quantize_row_q6_K_ref,
                                         quantize_rows_weighted<block_q6_K, quantize_row_q6_K_impl>>(src, dst, nrows, n_per_row, imatrix);
}

}  // namespace ggq
