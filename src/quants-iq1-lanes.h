// The IQ1_S / IQ1_M search kernels written once over W float lanes (W = 8: AVX2,
// quants-iq1-avx2.cpp; W = 16: AVX-512, quants-iq1-avx512.cpp). Everything but iq1_simd<W>'s
// members has internal linkage, so every instantiation stays local to its instruction set.
//
// Why the answers equal ggml's:
// - Split search: ggml scans the splits (i1, i2 >= i1) in order, each shift in turn, and takes a
//   split when sumq2 > 0 && sumqx^2 > best*sumq2. Here the lanes are consecutive i2 of one i1: each
//   lane forms sumqx and sumq2 with ggml's operations in ggml's order (the parts that depend on i1
//   only or on i2 only are the same roundings computed once), and tests them against the best so
//   far. A chunk where no lane passes changes nothing in ggml's scan either (the best moves only
//   when a split passes), so it is skipped; otherwise ggml's scan runs over the chunk from its
//   first passing split (scan_chunk).
// - Neighbour search: ggml's distance of a candidate sums w_i*d*d (d = scale*xx[l] - x_i) over i in
//   order. The term of coordinate i depends only on its level l, so the three possible terms are
//   computed once (the same roundings) and each lane adds the ones of its candidate in order; the
//   first smallest sum wins, as in ggml's strict scan.
#pragma once

#include "ggq-lanes-x86.h"
#include "quants-iq-grid-simd.h"
#include "quants-iq1.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cfloat>

namespace ggq {
namespace {

template <int W>
struct lanes;

#if defined(__AVX2__) && !defined(__AVX512F__)
// F, load, store, set1, add, sub, mul, div and hmin from x86::avx2
template <>
struct lanes<8> : x86::avx2 {
    static uint32_t gt(F a, F b) { return (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
    // row[idx[j]] per lane j, idx: 8 bytes, each < 8
    static F lookup(const float * row, const uint8_t * idx) {
        const __m256i i = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)idx));
        return _mm256_permutevar8x32_ps(_mm256_load_ps(row), i);
    }
    // lanes < nvalid take min(acc, vmin) (a NaN acc keeps vmin), the others keep vmin
    static F min_valid(F vmin, F acc, uint32_t nvalid) {
        const __m256 valid = _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps((float)nvalid), _CMP_LT_OQ);
        return _mm256_blendv_ps(vmin, _mm256_min_ps(acc, vmin), valid);
    }
};
#endif

#if defined(__AVX512F__)
// F, load, store, set1, add, sub, mul, div and hmin from x86::avx512
template <>
struct lanes<16> : x86::avx512 {
    static uint32_t gt(F a, F b) { return (uint32_t)_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
    // row[idx[j]] per lane j, idx: 16 bytes, each < 8 (masked forms: GCC 12 warns on the plain ones)
    static F lookup(const float * row, const uint8_t * idx) {
        const __m512i i = _mm512_maskz_cvtepu8_epi32((__mmask16)0xffff, _mm_loadu_si128((const __m128i *)idx));
        return _mm512_maskz_permutexvar_ps((__mmask16)0xffff, i, _mm512_maskz_loadu_ps((__mmask16)0x00ff, row));
    }
    // the 16 bytes at p as lane indices
    static __m512i index(const uint8_t * p) {
        return _mm512_maskz_cvtepu8_epi32((__mmask16)0xffff, _mm_loadu_si128((const __m128i *)p));
    }
    // t[idx[j]] per lane j from a 32-entry table
    static F lut32(const float * t, __m512i idx) {
        return _mm512_permutex2var_ps(_mm512_loadu_ps(t), idx, _mm512_loadu_ps(t + 16));
    }
    static F min_valid(F vmin, F acc, uint32_t nvalid) {
        const __mmask16 valid = nvalid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nvalid) - 1);
        return _mm512_mask_min_ps(vmin, valid, acc, vmin);  // a NaN acc keeps vmin
    }
};
#endif

// Lanes [0, n) of W, as a bit mask.
template <int W>
constexpr uint32_t first_lanes(int n) {
    return n >= W ? (W == 32 ? ~0u : (1u << W) - 1) : (1u << n) - 1;
}

// ggml's scan over the K shift choices of lanes [t, n) of one chunk, lane by lane, from the best so
// far: a split passes when sumq2 > 0 && sumqx^2 > best*sumq2, then scale = sumqx/sumq2 and best =
// scale*sumqx. The squares, quotients and new bests are the same roundings computed lane-parallel
// first, so that the sequential part is a compare and a select per split (no division, no branch).
// Returns K*lane + k of the last split taken, or -1.
template <int W, int K, class P = lanes<W>>
int scan_chunk(const typename P::F * qx, const typename P::F * q2, int t, int n, float & best, float & scale) {
    alignas(64) float b[K][W], sq[K][W], r[K][W], s[K][W];
    for (int k = 0; k < K; ++k) {
        const typename P::F rk = P::div(qx[k], q2[k]);
        P::store(b[k], q2[k]);
        P::store(sq[k], P::mul(qx[k], qx[k]));
        P::store(r[k], rk);
        P::store(s[k], P::mul(rk, qx[k]));
    }
    int win = -1;
    for (; t < n; ++t) {
        for (int k = 0; k < K; ++k) {
            const bool take = (b[k][t] > 0) & (sq[k][t] > best * b[k][t]);
            best = take ? s[k][t] : best;
            scale = take ? r[k][t] : scale;
            win = take ? K * t + k : win;
        }
    }
    return win;
}

}  // namespace

template <int W>
void iq1_simd<W>::best_split_s(const iq1s_sums & s, iq1_split & split) {
    using P = lanes<W>;
    using F = typename P::F;
    constexpr int N = 32;
    const float * const v[2] = {iq1_x_p, iq1_x_m};
    // the parts of ggml's sums that depend on i2 only: (S_N - S_i2)*v2 and (W_N - W_i2)*v2*v2
    alignas(64) float cx[2][48], cw[2][48];
    for (int k = 0; k < 2; ++k) {
        for (int i = 0; i < 48; ++i) {
            cx[k][i] = (s.x[N] - s.x[i]) * v[k][2];
            cw[k][i] = (s.w[N] - s.w[i]) * v[k][2] * v[k][2];
        }
    }
    const F zero = P::set1(0.0f);
    const F v1[2] = {P::set1(v[0][1]), P::set1(v[1][1])};
    float best = -FLT_MAX, scale = split.scale;
    for (int i1 = 0; i1 <= N; ++i1) {
        const int m = N + 1 - i1;  // i2 = i1 .. N
        F ax[2], aw[2];
        for (int k = 0; k < 2; ++k) {
            ax[k] = P::set1((s.x[i1] - s.x[0]) * v[k][0]);
            aw[k] = P::set1((s.w[i1] - s.w[0]) * v[k][0] * v[k][0]);
        }
        const F x1 = P::set1(s.x[i1]), w1 = P::set1(s.w[i1]);
        for (int t0 = 0; t0 < m; t0 += W) {
            const int i2 = i1 + t0;
            const F dx = P::sub(P::load(s.x + i2), x1), dw = P::sub(P::load(s.w + i2), w1);
            const F vb = P::set1(best);
            F qx[2], q2[2];
            uint32_t pass = 0;
            for (int k = 0; k < 2; ++k) {
                qx[k] = P::add(P::add(ax[k], P::mul(dx, v1[k])), P::load(cx[k] + i2));
                q2[k] = P::add(P::add(aw[k], P::mul(P::mul(dw, v1[k]), v1[k])), P::load(cw[k] + i2));
                pass |= P::gt(q2[k], zero) & P::gt(P::mul(qx[k], qx[k]), P::mul(vb, q2[k]));
            }
            const int n = std::min(W, m - t0);
            pass &= first_lanes<W>(n);
            if (!pass) continue;
            const int win = scan_chunk<W, 2>(qx, q2, __builtin_ctz(pass), n, best, scale);
            if (win >= 0) split = {i1, i2 + win / 2, win % 2, 0.0f};
        }
    }
    split.scale = scale;
}

template <int W>
void iq1_simd<W>::best_split_m(const iq1m_sums & s, iq1_split & split) {
    using P = lanes<W>;
    using F = typename P::F;
    constexpr int N = 16;
    const float p2 = iq1_x_p[2], m2 = iq1_x_m[2];
    const float cp1 = iq1_x_p[0] * iq1_x_p[0] - iq1_x_p[1] * iq1_x_p[1];
    const float cp2 = iq1_x_p[1] * iq1_x_p[1] - iq1_x_p[2] * iq1_x_p[2];
    const float cm1 = iq1_x_m[0] * iq1_x_m[0] - iq1_x_m[1] * iq1_x_m[1];
    const float cm2 = iq1_x_m[1] * iq1_x_m[1] - iq1_x_m[2] * iq1_x_m[2];
    // per half h: ggml's T*v2 and T_w*v2*v2, and the i2 parts W_i2*c2
    float tx_p[2], tx_m[2], tw_p[2], tw_m[2];
    alignas(64) float hw_p[2][32], hw_m[2][32];
    for (int h = 0; h < 2; ++h) {
        tx_p[h] = s.x[h][N] * p2;
        tx_m[h] = s.x[h][N] * m2;
        tw_p[h] = s.w[h][N] * p2 * p2;
        tw_m[h] = s.w[h][N] * m2 * m2;
        for (int i = 0; i < 32; ++i) {
            hw_p[h][i] = s.w[h][i] * cp2;
            hw_m[h][i] = s.w[h][i] * cm2;
        }
    }
    const F zero = P::set1(0.0f);
    float best = -FLT_MAX, scale = split.scale;
    // One chunk of splits, lane j: x1, g (per i1) and x2, hw (per i2) of each half; ggml's sums,
    // its test against the best so far, and its scan where a split passes. Returns the winning
    // lane*4 + pattern, or -1.
    const auto chunk = [&](const F * x1, const F * x2, const F * g_p, const F * g_m, const F * h_p, const F * h_m, int n) {
        F qx_p[2], qx_m[2], q2_p[2], q2_m[2];
        for (int h = 0; h < 2; ++h) {
            const F sx = P::add(x1[h], x2[h]);
            qx_p[h] = P::sub(P::set1(tx_p[h]), sx);
            qx_m[h] = P::sub(P::set1(tx_m[h]), sx);
            q2_p[h] = P::add(g_p[h], h_p[h]);
            q2_m[h] = P::add(g_m[h], h_m[h]);
        }
        const F qx[4] = {P::add(qx_p[0], qx_p[1]), P::add(qx_p[0], qx_m[1]), P::add(qx_m[0], qx_p[1]), P::add(qx_m[0], qx_m[1])};
        const F q2[4] = {P::add(q2_p[0], q2_p[1]), P::add(q2_p[0], q2_m[1]), P::add(q2_m[0], q2_p[1]), P::add(q2_m[0], q2_m[1])};
        const F vb = P::set1(best);
        uint32_t pass = 0;
        for (int k = 0; k < 4; ++k) pass |= P::gt(q2[k], zero) & P::gt(P::mul(qx[k], qx[k]), P::mul(vb, q2[k]));
        pass &= first_lanes<W>(n);
        return pass ? scan_chunk<W, 4>(qx, q2, __builtin_ctz(pass), n, best, scale) : -1;
    };
    if constexpr (W == 16) {
        // the 153 splits (i1, i2 >= i1) in ggml's order, 16 per vector; the per-i1 and per-i2
        // values are looked up from 32-entry tables (entries 0..16 used)
        static constexpr auto pairs = [] {
            std::array<std::array<uint8_t, 160>, 2> t{};
            int p = 0;
            for (int i1 = 0; i1 <= N; ++i1) {
                for (int i2 = i1; i2 <= N; ++i2, ++p) {
                    t[0][p] = (uint8_t)i1;
                    t[1][p] = (uint8_t)i2;
                }
            }
            for (; p < 160; ++p) t[0][p] = t[1][p] = N;
            return t;
        }();
        constexpr int npairs = (N + 1) * (N + 2) / 2;
        alignas(64) float g_p[2][32] = {}, g_m[2][32] = {};
        for (int h = 0; h < 2; ++h) {
            for (int i = 0; i <= N; ++i) {
                g_p[h][i] = tw_p[h] + s.w[h][i] * cp1;
                g_m[h][i] = tw_m[h] + s.w[h][i] * cm1;
            }
        }
        for (int p0 = 0; p0 < npairs; p0 += W) {
            const __m512i i1 = P::index(pairs[0].data() + p0), i2 = P::index(pairs[1].data() + p0);
            F x1[2], x2[2], gp[2], gm[2], hp[2], hm[2];
            for (int h = 0; h < 2; ++h) {
                x1[h] = P::lut32(s.x[h], i1);
                x2[h] = P::lut32(s.x[h], i2);
                gp[h] = P::lut32(g_p[h], i1);
                gm[h] = P::lut32(g_m[h], i1);
                hp[h] = P::lut32(hw_p[h], i2);
                hm[h] = P::lut32(hw_m[h], i2);
            }
            const int win = chunk(x1, x2, gp, gm, hp, hm, std::min(W, npairs - p0));
            if (win >= 0) split = {pairs[0][p0 + win / 4], pairs[1][p0 + win / 4], win % 4, 0.0f};
        }
    } else {
        for (int i1 = 0; i1 <= N; ++i1) {
            const int m = N + 1 - i1;
            F x1[2], gp[2], gm[2];
            for (int h = 0; h < 2; ++h) {
                x1[h] = P::set1(s.x[h][i1]);
                gp[h] = P::set1(tw_p[h] + s.w[h][i1] * cp1);
                gm[h] = P::set1(tw_m[h] + s.w[h][i1] * cm1);
            }
            for (int t0 = 0; t0 < m; t0 += W) {
                const int i2 = i1 + t0;
                const F x2[2] = {P::load(s.x[0] + i2), P::load(s.x[1] + i2)};
                const F hp[2] = {P::load(hw_p[0] + i2), P::load(hw_p[1] + i2)};
                const F hm[2] = {P::load(hw_m[0] + i2), P::load(hw_m[1] + i2)};
                const int win = chunk(x1, x2, gp, gm, hp, hm, std::min(W, m - t0));
                if (win >= 0) split = {i1, i2 + win / 4, win % 4, 0.0f};
            }
        }
    }
    split.scale = scale;
}

template <int W>
uint32_t iq1_simd<W>::nearest(const iq1_candidates & c, const iq1_terms & t) {
    using P = lanes<W>;
    using F = typename P::F;
    alignas(64) float d2[iq1_max_candidates];
    F vmin = P::set1(FLT_MAX);
    for (uint32_t j = 0; j < c.count; j += W) {
        F acc = P::set1(0.0f);
        for (int i = 0; i < 8; ++i) acc = P::add(acc, P::lookup(t.t + 8 * i, c.levels + i * c.stride + j));
        P::store(d2 + j, acc);
        vmin = P::min_valid(vmin, acc, c.count - j);
    }
    return first_index_of_min(P::hmin(vmin), d2);
}

}  // namespace ggq
