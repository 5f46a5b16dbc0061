// Internal helpers of the IQ4 quantizers, shared by the reference and the vector versions. All
// functions have internal linkage (static), so each translation unit keeps its own copy compiled
// with its own instruction-set flags.
#pragma once

#include "ggq-common.h"
#include "ggq-fp16.h"
#include "iq-grids.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ggq {

namespace iq4 {

constexpr float k_group_max_eps = 1e-15f;  // blocks with max |x| below this are all-zero

// Index of the code book value nearest to x; on a tie between two neighbours the upper one. The
// comparisons are those of ggml's binary search (a NaN lands on the last index).
static inline int best_index_iq4nl(float x) {
    const int8_t * val = kvalues_iq4nl;
    if (x <= val[0]) return 0;
    if (x >= val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < val[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// 2/n times the sum of squares, summed in order.
static inline float block_sigma2(const float * x, int n) {
    float sigma2 = 0;
    for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
    return sigma2 * (2.f / n);
}

// Search weights of 32 values: qw * sqrt(sigma2 + x^2) with importance weights, else x^2.
static inline void make_weights(const float * xb, const float * qw, float sigma2, float * weight, int n) {
    if (qw) {
        for (int j = 0; j < n; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    } else {
        for (int j = 0; j < n; ++j) weight[j] = xb[j] * xb[j];
    }
}

// Codes of n values (n a multiple of 32) into nibbles: low nibble x[j], high nibble x[j + 16].
static inline void pack_nibbles(const uint8_t * L, uint8_t * q4, int n) {
    for (int i = 0; i < n / 32; ++i) {
        for (int j = 0; j < 16; ++j) {
            q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
        }
    }
}

// IQ4_XS second stage: the super-block scale d = -max_scale/32, the 6-bit block scales, and the
// codes of every value re-chosen for its rounded block scale. fill_codes(xb, idl, q4) writes the
// 16 packed bytes of the 32 codes best_index_iq4nl(idl * xb[j]) of one block.
template <typename FillCodes>
static inline void encode_xs(const float * x, block_iq4_xs * y, const float * scales, float max_scale, FillCodes fill_codes) {
    uint16_t scales_h = 0;
    uint8_t scales_l[QK_K / 64] = {};
    const float d = -max_scale / 32;
    y->d = fp32_to_fp16(d);
    const float id = d ? 1 / d : 0.f;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        int l = nearest_int(id * scales[ib]);
        l = std::max(-32, std::min(31, l));
        const float dl = d * l;
        const float idl = dl ? 1 / dl : 0.f;
        fill_codes(x + 32 * ib, idl, y->qs + 16 * ib);
        l += 32;
        const uint8_t l_l = (uint8_t)(l & 0xf);
        const uint8_t l_h = (uint8_t)(l >> 4);
        if (ib % 2 == 0) {
            scales_l[ib / 2] = l_l;
        } else {
            scales_l[ib / 2] |= (uint8_t)(l_l << 4);
        }
        scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
    }
    y->scales_h = scales_h;
    std::memcpy(y->scales_l, scales_l, sizeof scales_l);
}

}  // namespace iq4

}  // namespace ggq
