// The IQ4_NL / IQ4_XS quantizers written once over a 16-lane float vector policy P (AVX2: two
// 8-lane halves; AVX-512: one register). Included only by the *-avx2.cpp / *-avx512.cpp files,
// each with its own policy type in an anonymous namespace, so every instantiation stays local to
// its translation unit and its instruction set.
//
// Why the bytes equal the reference: the reference tries 16 candidate scales for each block of 32
// (a first guess and 15 steps of itry), each an independent sequence of float sums over j in
// order. Here the 16 candidates are the 16 lanes: lane t accumulates exactly the reference's sums
// for candidate t, in the same order, with the same (unfused) operations; then the scalar code
// picks among the candidates in the reference's order with the reference's comparisons. The code
// lookup (best_index_iq4nl) is a branch-free binary search with the same comparisons and the same
// tie rule.
//
// A policy P provides:
//   using F;  F load(const float *); F set1(float); F mul(F, F); F add(F, F); void store(float *, F)
//   F best_value(F al)                        -- kvalues_iq4nl[best_index_iq4nl(al)] per lane
//   void codes32(const float * xb, float id, uint8_t * q4)   -- 16 packed bytes of 32 codes
//   float abs_max32(const float * xb, float * max)  -- max |xb[j]|, and the first xb[j] reaching it
//   void weights32(const float * xb, const float * qw, float sigma2, float * w)
#pragma once

#include "quants-iq-impl.h"
#include "quants-iq.h"

namespace ggq {
namespace iq4 {

template <class P>
static inline float block_scale_simd(const float * xb, const float * weight) {
    float max;
    const float amax = P::abs_max32(xb, &max);
    if (amax < k_group_max_eps) {
        return 0.0f;
    }
    const int8_t * values = kvalues_iq4nl;
    alignas(64) float ids[16];
    const float d0 = -max / values[0];
    ids[0] = 1 / d0;
    for (int t = 1; t < 16; ++t) {
        ids[t] = (t - 8 + values[0]) / max;  // itry = t - 8 in -7..7
    }
    const typename P::F id = P::load(ids);
    typename P::F sumqx = P::set1(0.0f), sumq2 = P::set1(0.0f);
    for (int j = 0; j < 32; ++j) {
        const typename P::F xj = P::set1(xb[j]);
        const typename P::F q = P::best_value(P::mul(id, xj));
        const typename P::F wq = P::mul(P::set1(weight[j]), q);
        sumqx = P::add(sumqx, P::mul(wq, xj));
        sumq2 = P::add(sumq2, P::mul(wq, q));
    }
    alignas(64) float sx[16], s2[16];
    P::store(sx, sumqx);
    P::store(s2, sumq2);
    float d = s2[0] > 0 ? sx[0] / s2[0] : 0.f;
    float best = d * sx[0];
    for (int t = 1; t < 16; ++t) {
        if (s2[t] > 0 && sx[t] * sx[t] > best * s2[t]) {
            d = sx[t] / s2[t];
            best = d * sx[t];
        }
    }
    return d;
}

template <class P>
static size_t quantize_iq4_nl_simd(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / QK4_NL;
    auto * y = static_cast<block_iq4_nl *>(dst);
    alignas(64) float weight[32];
    for (int64_t r = 0; r < nrows; ++r, src += n_per_row, y += nb) {
        for (int64_t i = 0; i < nb; ++i) {
            const float * x = src + QK4_NL * i;
            const float * qw = imatrix ? imatrix + QK4_NL * i : nullptr;
            P::weights32(x, qw, qw ? block_sigma2(x, 32) : 0.0f, weight);
            const float scale = block_scale_simd<P>(x, weight);
            y[i].d = fp32_to_fp16(scale);
            P::codes32(x, scale ? 1 / scale : 0, y[i].qs);
        }
    }
    return (size_t)(nrows * nb) * sizeof(block_iq4_nl);
}

template <class P>
static size_t quantize_iq4_xs_simd(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    const int64_t nb = n_per_row / QK_K;
    auto * y = static_cast<block_iq4_xs *>(dst);
    alignas(64) float weight[32];
    float scales[QK_K / 32];
    for (int64_t r = 0; r < nrows; ++r, src += n_per_row, y += nb) {
        for (int64_t i = 0; i < nb; ++i) {
            const float * x = src + QK_K * i;
            const float * qw = imatrix ? imatrix + QK_K * i : nullptr;
            const float sigma2 = qw ? block_sigma2(x, QK_K) : 0.0f;
            float max_scale = 0, amax_scale = 0;
            for (int ib = 0; ib < QK_K / 32; ++ib) {
                P::weights32(x + 32 * ib, qw ? qw + 32 * ib : nullptr, sigma2, weight);
                scales[ib] = block_scale_simd<P>(x + 32 * ib, weight);
                const float abs_d = std::fabs(scales[ib]);
                if (abs_d > amax_scale) {
                    amax_scale = abs_d;
                    max_scale = scales[ib];
                }
            }
            encode_xs(x, y + i, scales, max_scale, [](const float * xb, float idl, uint8_t * q4) { P::codes32(xb, idl, q4); });
        }
    }
    return (size_t)(nrows * nb) * sizeof(block_iq4_xs);
}

}  // namespace iq4
}  // namespace ggq
