// IQ1_S / IQ1_M search kernels per SIMD level (the quantizers are in quants-iq-grid.cpp): ggml's
// exhaustive split search over the sorted values of a block, and the nearest grid point of an
// off-grid group from per-coordinate distance terms. The portable versions are in
// quants-iq-grid.cpp; iq1_simd<8> (AVX2) and iq1_simd<16> (AVX-512) run the same float operations
// lane-parallel (quants-iq1-lanes.h says why the answers are the same).
#pragma once

#include "iq-grids.h"

#include <cstdint>

namespace ggq {

// Level values -1, 0, 1 shifted by +delta (x_p) or -delta (x_m).
inline constexpr float iq1_x_p[3] = {-1 + iq1s_delta, iq1s_delta, 1 + iq1s_delta};
inline constexpr float iq1_x_m[3] = {-1 - iq1s_delta, -iq1s_delta, 1 - iq1s_delta};

// The winner of a split search: sorted positions [0, i1) take level 0, [i1, i2) level 1, the rest
// level 2; k is the shift choice (IQ1_S: 0 = x_p, 1 = x_m; IQ1_M: the pattern 0..3). i1 < 0 when
// no split passed ggml's test (scale then keeps its initial value).
struct iq1_split {
    int i1 = -1, i2 = -1, k = -1;
    float scale = 0;
};

// Prefix sums over the sorted values (weight*x and weight), padded with zeros so that a vector
// load at any split point stays inside. IQ1_S: one block of 32. IQ1_M: one block of 16, kept per
// half of the block (h = 0: positions 0..7), as each half has its own shift.
struct iq1s_sums {
    alignas(64) float x[48];
    alignas(64) float w[48];
};
struct iq1m_sums {
    alignas(64) float x[2][32];
    alignas(64) float w[2][32];
};

// Distance terms of one group of 8 at one scale: t[8*i + l] = (w_i*d)*d with d = scale*xx[l] - x_i
// (ggml's per-coordinate term), l < 3; lanes 3..7 of each row are never read.
struct iq1_terms {
    alignas(64) float t[64];
};

// ggml's test and update for one split: it wins when sumq2 > 0 && sumqx^2 > best*sumq2.
inline bool iq1_take(float sumqx, float sumq2, float & best, float & scale) {
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        scale = sumqx / sumq2;
        best = scale * sumqx;
        return true;
    }
    return false;
}

// The most candidates an off-grid key of the IQ1 grid has (205, rounded up to whole vectors).
inline constexpr uint32_t iq1_max_candidates = 256;

// An off-grid key's candidate grid points as levels (0..2), coordinate-major, `stride` (a multiple
// of 16) bytes per coordinate; entries past the count are 0.
struct iq1_candidates {
    const uint8_t * levels;
    uint32_t stride;
    uint32_t count;
};

template <int W>
struct iq1_simd {
    // ggml's scan over every split (i1 <= i2) and shift; split.scale enters as the initial scale.
    static void best_split_s(const iq1s_sums & s, iq1_split & split);
    static void best_split_m(const iq1m_sums & s, iq1_split & split);
    // The first candidate with the smallest sum of terms (summed over coordinates in order),
    // ggml's strict scan from FLT_MAX; 0 where no sum is below FLT_MAX.
    static uint32_t nearest(const iq1_candidates & c, const iq1_terms & t);
};
extern template struct iq1_simd<8>;
extern template struct iq1_simd<16>;

}  // namespace ggq
