// Scale searches shared by the K-quants and the weighted legacy quantizers.
//
// These follow ggml's reference search routines (ggml-quants.c: nearest_int, make_qx_quants,
// make_q3_quants, make_qkx2_quants, make_qkx3_quants, make_qp_quants) operation by operation:
// every float expression is evaluated in the same order, in float, without fused multiply-adds
// (the core is built with -ffp-contract=off). Changing the order of any addition changes bytes.
//
// Everything here has internal linkage (static): the header is also included by the ISA-specific
// translation units, and an inline function compiled with AVX2 must never be picked by the linker
// for the generic path.
#pragma once

#include "ggq-kernel.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ggq {
namespace kq {

// Below this magnitude a group counts as all zero.
constexpr float GROUP_MAX_EPS = 1e-15f;

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

// Symmetric quantization of n values to [-nmax, nmax-1] (stored +nmax in L). rmse_type 0: plain
// rounding; 1: weighted least squares with a search over 18 nearby scales (weights qw, or x^2
// when qw is null); negative: one refinement step only. Returns the scale.
static inline float make_qx_quants(int n, int nmax, const float * __restrict x, int8_t * __restrict L, int rmse_type,
                                   const float * __restrict qw) {
    float amax;
    const float max = max_by_magnitude(x, n, amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = (float)(-nmax) / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) {
            const int l = nearest_int(iscale * x[i]);
            L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
        }
        return 1 / iscale;
    }
    bool return_early = false;
    if (rmse_type < 0) {
        rmse_type = -rmse_type;
        return_early = true;
    }
    // the weights once, up front, as one plain array (the hot loops below then do no branching)
    std::vector<float> wheap;
    float wbuf[64];
    const float * w = qw;
    if (!w) {
        float * wr = wbuf;
        if (n > 64) {
            wheap.resize((size_t)n);
            wr = wheap.data();
        }
        for (int i = 0; i < n; ++i) {
            switch (rmse_type) {
                case 1: wr[i] = x[i] * x[i]; break;
                case 2: wr[i] = 1.0f; break;
                case 3: wr[i] = std::fabs(x[i]); break;
                default: wr[i] = std::sqrt(std::fabs(x[i])); break;
            }
        }
        w = wr;
    }
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        sumlx += w[i] * x[i] * (float)l;
        suml2 += w[i] * (float)l * (float)l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
#pragma GCC unroll 2  // fully unrolled, GCC spills the sums and runs ~25% slower than ggml
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            sumlx += w[i] * x[i] * (float)l;
            suml2 += w[i] * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's search: rounding to [-nmax, nmax-1] then up to 5 passes of coordinate descent on the
// x^2-weighted error (do_rmse), stored +nmax in L. Returns the scale.
static inline float make_q3_quants(int n, int nmax, const float * __restrict x, int8_t * __restrict L, bool do_rmse) {
    float amax;
    const float max = max_by_magnitude(x, n, amax);
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = (float)(-nmax) / max;
    if (do_rmse) {
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            L[i] = (int8_t)l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        for (int itry = 0; itry < 5; ++itry) {
            int n_changed = 0;
            for (int i = 0; i < n; ++i) {
                const float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * (float)L[i];
                if (slx > 0) {
                    float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                    int new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = imax(-nmax, imin(nmax - 1, new_l));
                    if (new_l != L[i]) {
                        slx += w * x[i] * (float)new_l;
                        sl2 += w * (float)new_l * (float)new_l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (int8_t)new_l;
                            sumlx = slx;
                            suml2 = sl2;
                            ++n_changed;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
    }
    return 1 / iscale;
}

// Asymmetric (scale + min) search shared by make_qkx2_quants and make_qkx3_quants. The two differ
// only in the zero test (qkx2: max == min; qkx3: max <= min) and in qkx3 accepting null weights
// (then x^2). Writes L in [0, nmax] and *the_min = -min; returns the scale.
template <bool X3>
static inline float make_qkx_quants_impl(int n, int nmax, const float * __restrict x, const float * __restrict weights,
                                         uint8_t * __restrict L, float * __restrict the_min, uint8_t * __restrict Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    auto wt = [&](int i) -> float {
        if constexpr (X3) {
            return weights ? weights[i] : x[i] * x[i];
        } else {
            return weights[i];
        }
    };
    float min = x[0];
    float max = x[0];
    float sum_w = wt(0);
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = wt(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (X3 ? (max <= min) : (max == min)) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += wt(i) * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = wt(i);
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += wt(i) * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static inline float make_qkx2_quants(int n, int nmax, const float * x, const float * weights, uint8_t * L, float * the_min,
                                     uint8_t * Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    return make_qkx_quants_impl<false>(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

static inline float make_qkx3_quants(int n, int nmax, const float * x, const float * weights, uint8_t * L, float * the_min,
                                     uint8_t * Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    return make_qkx_quants_impl<true>(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad);
}

// Quantizes non-negative values (sub-block scales or mins) to [0, nmax] with weights: a scale
// search over 8 neighbours, then up to 5 passes of coordinate descent. Returns the scale.
static inline float make_qp_quants(int n, int nmax, const float * __restrict x, uint8_t * __restrict L,
                                   const float * __restrict quant_weights) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
    if (max < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)nearest_int(iscale * x[i]);
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * (float)L[i];
        best_mse += quant_weights[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale_is * x[i]);
            l = imin(nmax, l);
            const float diff = x[i] - scale_is * (float)l;
            mse += quant_weights[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = imin(nmax, l);
        L[i] = (uint8_t)l;
        const float w = quant_weights[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = quant_weights[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = imin(nmax, new_l);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace kq
}  // namespace ggq
