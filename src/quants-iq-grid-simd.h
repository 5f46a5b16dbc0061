// Nearest-candidate searches of the IQ grid quantizers, per instruction set. Each version computes
// every candidate's weighted distance sum_i w[i] * (scale*q[i][j] - x[i])^2 exactly as ggml does
// (summed over i in order, no fused multiply-add) and returns the index of the first smallest
// distance below FLT_MAX (ggml's scan), or 0 where none is (ggml aborts there). nearest_candidate_*
// puts one candidate per lane (one scale); nearest_run_* one scale per lane (a run of scales that
// round a group to the same off-grid key, hence search the same list), scanning the candidates in
// list order as ggml does, so that no horizontal reduction is needed.
#pragma once

#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ggq {

// q: the candidates' coordinates, coordinate-major, `stride` (a multiple of 8) floats per coordinate.
using nearest_candidate_fn = uint32_t (*)(const float * q, uint32_t stride, uint32_t count, int dim, const float * x,
                                          const float * w, float scale);

// The answer of a vector search from its smallest valid distance `best` and the stored distances:
// the first index holding it, or 0 where no distance is below FLT_MAX.
static inline uint32_t first_index_of_min(float best, const float * d2) {
    if (!(best < FLT_MAX)) return 0;
    uint32_t j = 0;
    while (d2[j] != best) ++j;
    return j;
}

// round_levels_lanes / level_sums_lanes below, per instruction set.
using round_levels_fn = void (*)(const float * ids, int ncp, const float * x, int dim, int kmaxq, int bits, float (*qt)[32],
                                 uint32_t * keys);
using level_sums_fn = void (*)(const float (*qt)[32], int n, int ncp, const float * weight, const float * xval, float * sqx,
                               float * sq2);

// best[s]: the nearest_candidate_fn answer at scales[s], for s < nscales.
using nearest_run_fn = void (*)(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                const float * scales, int nscales, uint32_t * best);

namespace {

// Lanes of the generic (4, SSE2 on x86), AVX2 (8) and AVX-512 (16) kernels as GCC vectors: each
// lane runs ggml's scalar operations, in order and unfused, for its candidate scale.
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

// nearest_run_fn with W scales per vector; the strict < keeps the first smallest, as ggml's scan.
template <class VF, class VI, int D>
void nearest_run_lanes(const float * q, uint32_t stride, uint32_t count, const float * x, const float * w, const float * scales,
                       int nscales, uint32_t * best) {
    constexpr int W = (int)(sizeof(VF) / sizeof(float));
    VF xv[D], wv[D];
    for (int i = 0; i < D; ++i) {
        xv[i] = VF{} + x[i];
        wv[i] = VF{} + w[i];
    }
    for (int s0 = 0; s0 < nscales; s0 += W) {
        VF vs;
        for (int l = 0; l < W; ++l) vs[l] = scales[s0 + l < nscales ? s0 + l : nscales - 1];  // padding repeats the last
        VF bestd = VF{} + FLT_MAX;
        VI bi = VI{};
        for (uint32_t j = 0; j < count; ++j) {
            VF acc = VF{};
            for (int i = 0; i < D; ++i) {
                const VF diff = vs * q[(size_t)i * stride + j] - xv[i];
                acc = acc + wv[i] * diff * diff;
            }
            const VI lt = acc < bestd;
            bestd = lt ? acc : bestd;
            bi = lt ? VI{} + (int32_t)j : bi;
        }
        for (int l = 0; l < W && s0 + l < nscales; ++l) best[s0 + l] = (uint32_t)bi[l];
    }
}

// Levels of `dim` values x at ncp candidate inverse scales ids (ncp a multiple of the lanes):
// l = clamp(nearest_int(0.5 * (ids[c]*x[i] - 1)), 0, kmaxq - 1), as ggml rounds; 2l+1 to qt[i][c],
// and the key (level i at bit bits*i) to keys[c].
template <class VF, class VI>
void round_levels_lanes(const float * ids, int ncp, const float * x, int dim, int kmaxq, int bits, float (*qt)[32],
                        uint32_t * keys) {
    constexpr int W = (int)(sizeof(VF) / sizeof(float));
    for (int c = 0; c < ncp; c += W) {
        VF id;
        std::memcpy(&id, ids + c, sizeof id);
        VI key = VI{};
        for (int i = 0; i < dim; ++i) {
            const VF t = 0.5f * (id * x[i] - 1.0f) + 12582912.f;  // nearest_int's 1.5 * 2^23
            VI l = ((VI)t & 0x007fffff) - 0x00400000;
            l = l > kmaxq - 1 ? VI{} + (kmaxq - 1) : l;
            l = l < 0 ? VI{} : l;
            const VF q = __builtin_convertvector(2 * l + 1, VF);
            std::memcpy(qt[i] + c, &q, sizeof q);
            key |= l << (bits * i);
        }
        std::memcpy(keys + c, &key, sizeof key);
    }
}

// sum_i w[i]*x[i]*q[i][c] and sum_i w[i]*q[i][c]^2 over n values, each in ggml's order, for ncp
// candidates (a multiple of the lanes).
template <class VF>
void level_sums_lanes(const float (*qt)[32], int n, int ncp, const float * weight, const float * xval, float * sqx, float * sq2) {
    constexpr int W = (int)(sizeof(VF) / sizeof(float));
    for (int c = 0; c < ncp; c += W) {
        VF a = VF{}, b = VF{};
        for (int i = 0; i < n; ++i) {
            const float w = weight[i];
            const float wx = w * xval[i];
            VF q;
            std::memcpy(&q, qt[i] + c, sizeof q);
            a = a + wx * q;
            b = b + w * q * q;
        }
        std::memcpy(sqx + c, &a, sizeof a);
        std::memcpy(sq2 + c, &b, sizeof b);
    }
}

template <class VF, class VI>
void nearest_run_dispatch(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                          const float * scales, int nscales, uint32_t * best) {
    if (dim == 8) {
        nearest_run_lanes<VF, VI, 8>(q, stride, count, x, w, scales, nscales, best);
    } else {
        nearest_run_lanes<VF, VI, 4>(q, stride, count, x, w, scales, nscales, best);
    }
}

}  // namespace

// The lane kernels of one instruction set: nearest_run_dispatch, round_levels_lanes and
// level_sums_lanes instantiated in its translation unit, 2^width_log2 lanes.
struct grid_lanes {
    nearest_run_fn run;
    round_levels_fn round;
    level_sums_fn sums;
    int width_log2;
};

#if defined(GGQUANT_X86_SIMD)
extern const grid_lanes grid_lanes_avx2;
extern const grid_lanes grid_lanes_avx512;
uint32_t nearest_candidate_avx2(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                float scale);
uint32_t nearest_candidate_avx512(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                  float scale);
#endif

}  // namespace ggq
