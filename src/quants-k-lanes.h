// Vector K-quant searches: each SIMD lane runs the scalar reference's operation sequence for one
// group (sub-block) of values, so W groups are searched at once and every lane's result is
// bit-identical to the scalar code. Only IEEE-exact operations are used (add, sub, mul, div, sqrt,
// compares, integer bit tricks); data-dependent branches become per-lane masks.
//
// Included by quants-k-avx2.cpp (W = 8) and quants-k-avx512.cpp (W = 16), which instantiate
// kquants_simd<W> (quants-k.h), and by quants-legacy-lanes.h for the weighted Q4_0..Q5_1 search.
// Everything else here has internal linkage: each ISA gets its own copy, compiled with its own flags.
#pragma once

#include "ggq-common.h"
#include "quants-k-internal.h"
#include "quants-k.h"
#include "quants-legacy.h"
#include "quants-k-search.h"

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace ggq {
namespace kq {
namespace {

template <class VF, class VI>
struct lanes {
    static constexpr int W = (int)(sizeof(VF) / sizeof(float));
    static_assert(W == 8 || W == 16, "lanes: 8 or 16 floats per vector");

    static VF bc(float s) { return VF{} + s; }
    static VF cvt(VI v) { return __builtin_convertvector(v, VF); }
    static VF vabs(VF v) { return (VF)((VI)v & 0x7fffffff); }

    static VF vsqrt(VF v) {
        if constexpr (W == 8) {
            return (VF)_mm256_sqrt_ps((__m256)v);
        } else {
            return (VF)_mm512_maskz_sqrt_ps((__mmask16)0xFFFF, (__m512)v);  // _mm512_sqrt_ps trips -Wmaybe-uninitialized in GCC 12
        }
    }

    static bool any(VI m) {
        if constexpr (W == 8) {
            return !_mm256_testz_si256((__m256i)m, (__m256i)m);
        } else {
            return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
        }
    }

    // nearest_int of every lane (same bits as the scalar trick, also for out-of-range values)
    static VI nearest(VF v) {
        const VI b = (VI)(v + 12582912.f);
        return (b & 0x007fffff) - 0x00400000;
    }

    static VI clamp(VI l, int lo, int hi) {
        l = l < lo ? lo : l;
        return l > hi ? hi : l;
    }

    // make_qkx2_quants (X3 = false) / make_qkx3_quants (X3 = true) on W groups of n values.
    // x[i], w[i]: value/weight i of every group (w null: x^2, qkx3 only). Writes L[i] in [0, nmax]
    // and the negated offset to *the_min; returns the scales. Laux: scratch of n vectors.
    template <bool X3>
    static VF qkx(int n, int nmax, const VF * x, const VF * w, VI * L, VI * Laux, VF * the_min, float rmin, float rdelta,
                  int nstep, bool use_mad) {
        auto wt = [&](int i) -> VF {
            if constexpr (X3) {
                return w ? w[i] : x[i] * x[i];
            } else {
                return w[i];
            }
        };
        VF min = x[0];
        VF max = x[0];
        VF sum_w = wt(0);
        VF sum_x = sum_w * x[0];
        for (int i = 1; i < n; ++i) {
            min = x[i] < min ? x[i] : min;
            max = x[i] > max ? x[i] : max;
            const VF wi = wt(i);
            sum_w += wi;
            sum_x += wi * x[i];
        }
        min = min > 0.f ? bc(0.f) : min;
        const VI zero = X3 ? (VI)(max <= min) : (VI)(max == min);
        const VF min0 = min;
        VF iscale = bc((float)nmax) / (max - min);
        VF scale = bc(1.f) / iscale;
        VF best = VF{};
        for (int i = 0; i < n; ++i) {
            const VI l = clamp(nearest(iscale * (x[i] - min)), 0, nmax);
            L[i] = l;
            VF diff = scale * cvt(l) + min - x[i];
            diff = use_mad ? vabs(diff) : diff * diff;
            best += wt(i) * diff;
        }
        if (nstep >= 1) {
            for (int is = 0; is <= nstep; ++is) {
                const float num = rmin + rdelta * (float)is + (float)nmax;
                iscale = bc(num) / (max - min);  // min: the best offset so far, as in ggml
                VF sum_l = VF{}, sum_l2 = VF{}, sum_xl = VF{};
                for (int i = 0; i < n; ++i) {
                    const VI l = clamp(nearest(iscale * (x[i] - min)), 0, nmax);
                    Laux[i] = l;
                    const VF fl = cvt(l);
                    const VF wi = wt(i);
                    sum_l += wi * fl;
                    sum_l2 += wi * fl * fl;
                    sum_xl += wi * fl * x[i];
                }
                const VF D = sum_w * sum_l2 - sum_l * sum_l;
                const VI dpos = (VI)(D > 0.f) & ~zero;
                if (!any(dpos)) continue;
                VF this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
                VF this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
                const VI mpos = this_min > 0.f;
                this_min = mpos ? bc(0.f) : this_min;
                this_scale = mpos ? sum_xl / sum_l2 : this_scale;
                VF cur = VF{};
                for (int i = 0; i < n; ++i) {
                    VF diff = this_scale * cvt(Laux[i]) + this_min - x[i];
                    diff = use_mad ? vabs(diff) : diff * diff;
                    cur += wt(i) * diff;
                }
                const VI upd = dpos & (VI)(cur < best);
                if (!any(upd)) continue;
                for (int i = 0; i < n; ++i) L[i] = upd ? Laux[i] : L[i];
                best = upd ? cur : best;
                scale = upd ? this_scale : scale;
                min = upd ? this_min : min;
            }
        }
        for (int i = 0; i < n; ++i) L[i] = zero ? 0 : L[i];
        *the_min = zero ? -min0 : -min;
        return zero ? bc(0.f) : scale;
    }

    // make_qx_quants with rmse_type 1 on W groups: weights qw[i], or x^2 when qw is null.
    // L[i] in [0, 2*nmax); tmp: scratch of n vectors; n <= 32. Returns the scales.
    static VF qx(int n, int nmax, const VF * x, const VF * qw, VI * L, VI * tmp) {
        VF amax;
        const VF max = max_by_magnitude(n, x, amax);
        const VI zero = amax < GROUP_MAX_EPS;
        // the weights w and the products w*x (the first factor of w*x*l) once, for all 19 scales
        VF wv[32], wx[32];
        for (int i = 0; i < n; ++i) {
            wv[i] = qw ? qw[i] : x[i] * x[i];
            wx[i] = wv[i] * x[i];
        }
        VF iscale = bc((float)(-nmax)) / max;
        VF sumlx = VF{};
        VF suml2 = VF{};
        for (int i = 0; i < n; ++i) {
            const VI l = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
            L[i] = l + nmax;
            const VF fl = cvt(l);
            sumlx += wx[i] * fl;
            suml2 += wv[i] * fl * fl;
        }
        VF scale = suml2 != 0.f ? sumlx / suml2 : bc(0.f);
        VF best = scale * sumlx;
        for (int is = -9; is <= 9; ++is) {
            if (is == 0) continue;
            const float num = -((float)nmax + 0.1f * (float)is);
            iscale = bc(num) / max;
            sumlx = VF{};
            suml2 = VF{};
            for (int i = 0; i < n; ++i) {
                const VI l = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
                tmp[i] = l;
                const VF fl = cvt(l);
                sumlx += wx[i] * fl;
                suml2 += wv[i] * fl * fl;
            }
            const VI upd = (VI)(suml2 > 0.f) & (VI)(sumlx * sumlx > best * suml2) & ~zero;
            if (!any(upd)) continue;
            for (int i = 0; i < n; ++i) L[i] = upd ? tmp[i] + nmax : L[i];
            const VF ns = sumlx / suml2;
            scale = upd ? ns : scale;
            best = upd ? ns * sumlx : best;
        }
        for (int i = 0; i < n; ++i) L[i] = zero ? 0 : L[i];
        return zero ? bc(0.f) : scale;
    }

    // make_q3_quants with do_rmse on U independent sets of W groups (the coordinate descent is one
    // long dependency chain per lane; interleaving U sets keeps the pipeline busy). L[u][i] in
    // [0, 2*nmax). Writes the scales to scale[u].
    template <int U, int N>
    static void q3(int nmax, const VF (*x)[N], VI (*L)[N], VF * scale_out) {
        VF sumlx[U], suml2[U];
        VI zero[U];
        for (int u = 0; u < U; ++u) {
            VF amax;
            const VF max = max_by_magnitude(N, x[u], amax);
            zero[u] = amax < GROUP_MAX_EPS;
            const VF iscale = bc((float)(-nmax)) / max;
            sumlx[u] = VF{};
            suml2[u] = VF{};
            for (int i = 0; i < N; ++i) {
                const VI l = clamp(nearest(iscale * x[u][i]), -nmax, nmax - 1);
                L[u][i] = l;
                const VF w = x[u][i] * x[u][i];
                const VF fl = cvt(l);
                sumlx[u] += w * x[u][i] * fl;
                suml2[u] += w * fl * fl;
            }
        }
        for (int itry = 0; itry < 5; ++itry) {
            VI changed = VI{};
            for (int i = 0; i < N; ++i) {
                for (int u = 0; u < U; ++u) {
                    const VF xi = x[u][i];
                    const VF w = xi * xi;
                    const VF fL = cvt(L[u][i]);
                    const VF slx = sumlx[u] - w * xi * fL;
                    const VF sl2 = suml2[u] - w * fL * fL;
                    const VI nl = clamp(nearest(xi * sl2 / slx), -nmax, nmax - 1);
                    const VF fn = cvt(nl);
                    const VF slx2 = slx + w * xi * fn;
                    const VF sl22 = sl2 + w * fn * fn;
                    const VI c = (VI)(slx > 0.f) & (VI)(nl != L[u][i]) & (VI)(sl22 > 0.f) &
                                 (VI)(slx2 * slx2 * suml2[u] > sumlx[u] * sumlx[u] * sl22) & ~zero[u];
                    L[u][i] = c ? nl : L[u][i];
                    sumlx[u] = c ? slx2 : sumlx[u];
                    suml2[u] = c ? sl22 : suml2[u];
                    changed |= c;
                }
            }
            if (!any(changed)) break;
        }
        for (int u = 0; u < U; ++u) {
            for (int i = 0; i < N; ++i) L[u][i] = zero[u] ? 0 : L[u][i] + nmax;
            scale_out[u] = zero[u] ? bc(0.f) : (suml2[u] > 0.f ? sumlx[u] / suml2[u] : bc(0.f));
        }
    }

    // sequential sum over n elements in every lane
    static VF lane_sum(int n, const VF * v) {
        VF s = VF{};
        for (int i = 0; i < n; ++i) s += v[i];
        return s;
    }

    // The weighted searches' weights qw[i] * sqrt(sigma2 + x[i]^2) of n values; returns their sum.
    static VF imatrix_weights(int n, const VF * x, const VF * qw, VF sigma2, VF * w) {
        for (int i = 0; i < n; ++i) w[i] = qw[i] * vsqrt(sigma2 + x[i] * x[i]);
        return lane_sum(n, w);
    }

    // The first x[i] of largest magnitude per lane (0 when all are zero), its magnitude in amax.
    static VF max_by_magnitude(int n, const VF * x, VF & amax) {
        VF max = VF{};
        amax = VF{};
        for (int i = 0; i < n; ++i) {
            const VF ax = vabs(x[i]);
            const VI c = ax > amax;
            amax = c ? ax : amax;
            max = c ? x[i] : max;
        }
        return max;
    }
};

// One tile: the super-blocks whose groups fill whole vectors. GS values per group, GPB groups per
// super-block. `search` fills, for a batch of W groups, L, scale, min and the sum of weights from
// x (and, when given, qw and the per-lane sigma2); `finish` completes one super-block. With U > 1
// the search gets U batches at once (arrays of U) to overlap their dependency chains.
template <class VF, class VI, int GS, int GPB, int U = 1>
struct tiler {
    using LN = lanes<VF, VI>;
    static constexpr int W = LN::W;
    static constexpr int SB_PER_TILE = W * U >= GPB ? W * U / GPB : 1;
    static constexpr int BATCHES = SB_PER_TILE * GPB / W;
    static_assert(SB_PER_TILE * GPB % W == 0, "a tile must fill whole vectors");
    static_assert(BATCHES % U == 0, "a tile must hold whole sets of U batches");

    struct tile_out {
        alignas(64) uint8_t L[SB_PER_TILE][QK_K];
        float scales[SB_PER_TILE][GPB];
        float mins[SB_PER_TILE][GPB];
        float sw[SB_PER_TILE][GPB];
    };

    // sigma2_of(x) gives the per-super-block statistic for the weighted variants (null: unused).
    template <class Search, class Finish>
    static void run(const float * src, int64_t nsb, int64_t nb_per_row, const float * imatrix, float (*sigma2_of)(const float *),
                    Search && search, Finish && finish) {
        tile_out out;
        VF xt[U][GS];
        VF qt[U][GS];
        VF sigma2[U];
        VI L[U][GS];
        VF scale[U], min[U], sw[U];
        alignas(64) int32_t Lt[GS][W];
        float sig[SB_PER_TILE];
        for (int64_t s0 = 0; s0 < nsb; s0 += SB_PER_TILE) {
            const int nsb_tile = (int)((nsb - s0) < SB_PER_TILE ? (nsb - s0) : SB_PER_TILE);
            if (sigma2_of) {
                for (int t = 0; t < nsb_tile; ++t) sig[t] = sigma2_of(src + (s0 + t) * QK_K);
            }
            for (int b0 = 0; b0 < BATCHES; b0 += U) {
                for (int u = 0; u < U; ++u) {
                    const int b = b0 + u;
                    sigma2[u] = VF{};
                    min[u] = VF{};
                    sw[u] = VF{};
                    for (int k = 0; k < W; ++k) {
                        const int g = b * W + k;
                        const int t = g / GPB;
                        const int j = g % GPB;
                        if (t < nsb_tile) {
                            const float * px = src + (s0 + t) * QK_K + j * GS;
                            for (int i = 0; i < GS; ++i) xt[u][i][k] = px[i];
                            if (imatrix) {
                                const float * pq = imatrix + ((s0 + t) % nb_per_row) * QK_K + j * GS;
                                for (int i = 0; i < GS; ++i) qt[u][i][k] = pq[i];
                            }
                            if (sigma2_of) sigma2[u][k] = sig[t];
                        } else {
                            for (int i = 0; i < GS; ++i) xt[u][i][k] = 0.f;
                            if (imatrix) {
                                for (int i = 0; i < GS; ++i) qt[u][i][k] = 0.f;
                            }
                        }
                    }
                }
                if constexpr (U == 1) {
                    search(xt[0], imatrix ? qt[0] : nullptr, sigma2[0], L[0], scale[0], min[0], sw[0]);
                } else {
                    search(xt, imatrix ? qt : nullptr, sigma2, L, scale, min, sw);
                }
                for (int u = 0; u < U; ++u) {
                    const int b = b0 + u;
                    for (int i = 0; i < GS; ++i) std::memcpy(Lt[i], &L[u][i], sizeof(L[u][i]));
                    for (int k = 0; k < W; ++k) {
                        const int g = b * W + k;
                        const int t = g / GPB;
                        const int j = g % GPB;
                        if (t >= nsb_tile) continue;
                        for (int i = 0; i < GS; ++i) out.L[t][j * GS + i] = (uint8_t)Lt[i][k];
                        out.scales[t][j] = scale[u][k];
                        out.mins[t][j] = min[u][k];
                        out.sw[t][j] = sw[u][k];
                    }
                }
            }
            for (int t = 0; t < nsb_tile; ++t) {
                finish(s0 + t, src + (s0 + t) * QK_K, out.L[t], out.scales[t], out.mins[t], out.sw[t]);
            }
        }
    }
};

inline float sigma2_q2(const float * x) { return superblock_sumsq(x) / QK_K; }
inline float sigma2_q345(const float * x) { return 2 * superblock_sumsq(x) / QK_K; }

// The chunk quantizers of one ISA. VF/VI: float and int32 vectors of the same width.
template <class VF, class VI>
struct kquants {
    using LN = lanes<VF, VI>;

    static size_t q2_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
        const int64_t nb = n_per_row / QK_K;
        auto * y = static_cast<block_q2_K *>(dst);
        using T = tiler<VF, VI, 16, 16>;
        if (!imatrix) {
            T::run(
                src, nrows * nb, nb, nullptr, nullptr,
                [](const VF * x, const VF *, VF, VI * L, VF & scale, VF & min, VF &) {
                    VF w[16];
                    VI Laux[16];
                    for (int i = 0; i < 16; ++i) w[i] = LN::vabs(x[i]);
                    scale = LN::template qkx<false>(16, 3, x, w, L, Laux, &min, -0.5f, 0.1f, 15, true);
                },
                [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float * mn, const float *) {
                    finish_q2_K_ref(x, L, sc, mn, y[s]);
                });
        } else {
            T::run(
                src, nrows * nb, nb, imatrix, sigma2_q2,
                [](const VF * x, const VF * qw, VF sigma2, VI * L, VF & scale, VF & min, VF & sw) {
                    VF w[16];
                    VI Laux[16];
                    sw = LN::imatrix_weights(16, x, qw, sigma2, w);
                    scale = LN::template qkx<true>(16, 3, x, w, L, Laux, &min, -0.9f, 0.05f, 36, false);
                },
                [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float * mn, const float * sw) {
                    finish_q2_K_impl(x, L, sc, mn, sw, y[s]);
                });
        }
        return (size_t)(nrows * nb) * sizeof(block_q2_K);
    }

    static size_t q3_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
        const int64_t nb = n_per_row / QK_K;
        auto * y = static_cast<block_q3_K *>(dst);
        using T = tiler<VF, VI, 16, 16>;
        if (!imatrix) {
            constexpr int U = 2;
            tiler<VF, VI, 16, 16, U>::run(
                src, nrows * nb, nb, nullptr, nullptr,
                [](const VF (*x)[16], const VF (*)[16], const VF *, VI (*L)[16], VF * scale, VF *, VF *) {
                    LN::template q3<U, 16>(4, x, L, scale);
                },
                [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float *, const float *) {
                    finish_q3_K_ref(x, reinterpret_cast<int8_t *>(L), sc, y[s]);
                });
        } else {
            T::run(
                src, nrows * nb, nb, imatrix, sigma2_q345,
                [](const VF * x, const VF * qw, VF sigma2, VI * L, VF & scale, VF &, VF & sw) {
                    VF w[16];
                    VI tmp[16];
                    sw = LN::imatrix_weights(16, x, qw, sigma2, w);
                    scale = LN::qx(16, 4, x, w, L, tmp);
                },
                [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float *, const float * sw) {
                    finish_q3_K_impl(x, reinterpret_cast<int8_t *>(L), sc, sw, y[s]);
                });
        }
        return (size_t)(nrows * nb) * sizeof(block_q3_K);
    }

    template <class Block, int NMAX, class FinishRef, class FinishImpl>
    static size_t q45_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix, float rmin, float rdelta,
                        int nstep, FinishRef finish_ref, FinishImpl finish_impl) {
        const int64_t nb = n_per_row / QK_K;
        auto * y = static_cast<Block *>(dst);
        using T = tiler<VF, VI, 32, 8>;
        if (!imatrix) {
            T::run(
                src, nrows * nb, nb, nullptr, nullptr,
                [&](const VF * x, const VF *, VF, VI * L, VF & scale, VF & min, VF &) {
                    VF w[32];
                    VI Laux[32];
                    VF sum_x2 = VF{};
                    for (int i = 0; i < 32; ++i) sum_x2 += x[i] * x[i];
                    const VF av_x = LN::vsqrt(sum_x2 / 32.f);
                    for (int i = 0; i < 32; ++i) w[i] = av_x + LN::vabs(x[i]);
                    scale = LN::template qkx<false>(32, NMAX, x, w, L, Laux, &min, rmin, rdelta, nstep, false);
                },
                [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float * mn, const float *) {
                    finish_ref(x, L, sc, mn, y[s]);
                });
        } else {
            T::run(
                src, nrows * nb, nb, imatrix, sigma2_q345,
                [](const VF * x, const VF * qw, VF sigma2, VI * L, VF & scale, VF & min, VF & sw) {
                    VF w[32];
                    VI Laux[32];
                    sw = LN::imatrix_weights(32, x, qw, sigma2, w);
                    scale = LN::template qkx<true>(32, NMAX, x, w, L, Laux, &min, -0.9f, 0.05f, 36, false);
                },
                [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float * mn, const float * sw) {
                    finish_impl(x, L, sc, mn, sw, y[s]);
                });
        }
        return (size_t)(nrows * nb) * sizeof(Block);
    }

    static size_t q4_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
        return q45_K<block_q4_K, 15>(src, dst, nrows, n_per_row, imatrix, -1.f, 0.1f, 20, finish_q4_K_ref, finish_q4_K_impl);
    }

    static size_t q5_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
        return q45_K<block_q5_K, 31>(src, dst, nrows, n_per_row, imatrix, -0.5f, 0.1f, 15, finish_q5_K_ref, finish_q5_K_impl);
    }

    static size_t q6_K(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
        const int64_t nb = n_per_row / QK_K;
        auto * y = static_cast<block_q6_K *>(dst);
        using T = tiler<VF, VI, 16, 16>;
        T::run(
            src, nrows * nb, nb, imatrix, nullptr,
            [](const VF * x, const VF * qw, VF, VI * L, VF & scale, VF &, VF &) {
                VI tmp[16];
                scale = LN::qx(16, 32, x, qw, L, tmp);
            },
            [&](int64_t s, const float * x, uint8_t * L, const float * sc, const float *, const float *) {
                finish_q6_K(x, reinterpret_cast<int8_t *>(L), sc, y[s]);
            });
        return (size_t)(nrows * nb) * sizeof(block_q6_K);
    }

    // Weighted Q4_0 / Q4_1 / Q5_0 / Q5_1 (imatrix non-null): W blocks of 32 per batch.
    template <class Block, int NMAX, bool AFFINE>
    static size_t legacy_weighted(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
        constexpr int W = LN::W;
        const int64_t nb = n_per_row / 32;
        const int64_t total = nrows * nb;
        auto * y = static_cast<Block *>(dst);
        std::vector<float> sig((size_t)nrows);
        for (int64_t r = 0; r < nrows; ++r) sig[(size_t)r] = legacy::row_sigma2(src + r * n_per_row, n_per_row);
        VF xt[32], qt[32], w[32];
        VI L[32], aux[32];
        alignas(64) int32_t Lt[32][W];
        for (int64_t b0 = 0; b0 < total; b0 += W) {
            VF sigma2 = VF{};
            for (int k = 0; k < W; ++k) {
                const int64_t blk = b0 + k;
                if (blk < total) {
                    const float * px = src + blk * 32;
                    const float * pq = imatrix + (blk % nb) * 32;
                    for (int i = 0; i < 32; ++i) {
                        xt[i][k] = px[i];
                        qt[i][k] = pq[i];
                    }
                    sigma2[k] = sig[(size_t)(blk / nb)];
                } else {
                    for (int i = 0; i < 32; ++i) xt[i][k] = qt[i][k] = 0.f;
                }
            }
            for (int i = 0; i < 32; ++i) w[i] = qt[i] * LN::vsqrt(sigma2 + xt[i] * xt[i]);
            VF d, the_min = VF{};
            if constexpr (AFFINE) {
                d = LN::template qkx<true>(32, NMAX, xt, w, L, aux, &the_min, -0.9f, 0.05f, 36, false);
            } else {
                d = LN::qx(32, NMAX, xt, w, L, aux);
            }
            for (int i = 0; i < 32; ++i) std::memcpy(Lt[i], &L[i], sizeof(L[i]));
            for (int k = 0; k < W && b0 + k < total; ++k) {
                uint8_t Lb[32];
                for (int i = 0; i < 32; ++i) Lb[i] = (uint8_t)Lt[i][k];
                Block & b = y[b0 + k];
                if constexpr (AFFINE && NMAX == 15) {
                    legacy::finish_q4_1_w(d[k], the_min[k], Lb, b);
                } else if constexpr (AFFINE) {
                    legacy::finish_q5_1_w(d[k], the_min[k], Lb, b);
                } else if constexpr (NMAX == 8) {
                    legacy::finish_q4_0_w(d[k], Lb, b);
                } else {
                    legacy::finish_q5_0_w(d[k], Lb, b);
                }
            }
        }
        return (size_t)total * sizeof(Block);
    }
};

// The vector types of W float / int32 lanes.
template <int W>
struct vec;
template <>
struct vec<8> {
    typedef float f __attribute__((vector_size(32)));
    typedef int32_t i __attribute__((vector_size(32)));
};
template <>
struct vec<16> {
    typedef float f __attribute__((vector_size(64)));
    typedef int32_t i __attribute__((vector_size(64)));
};
template <int W>
using kquants_w = kquants<typename vec<W>::f, typename vec<W>::i>;

}  // namespace
}  // namespace kq

template <int W> size_t kquants_simd<W>::q2_K(const float * x, void * y, int64_t r, int64_t n, const float * w) { return kq::kquants_w<W>::q2_K(x, y, r, n, w); }
template <int W> size_t kquants_simd<W>::q3_K(const float * x, void * y, int64_t r, int64_t n, const float * w) { return kq::kquants_w<W>::q3_K(x, y, r, n, w); }
template <int W> size_t kquants_simd<W>::q4_K(const float * x, void * y, int64_t r, int64_t n, const float * w) { return kq::kquants_w<W>::q4_K(x, y, r, n, w); }
template <int W> size_t kquants_simd<W>::q5_K(const float * x, void * y, int64_t r, int64_t n, const float * w) { return kq::kquants_w<W>::q5_K(x, y, r, n, w); }
template <int W> size_t kquants_simd<W>::q6_K(const float * x, void * y, int64_t r, int64_t n, const float * w) { return kq::kquants_w<W>::q6_K(x, y, r, n, w); }

}  // namespace ggq
