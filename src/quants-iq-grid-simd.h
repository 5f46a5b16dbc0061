// Nearest-candidate search of the IQ grid quantizers, per instruction set. Each version computes
// every candidate's weighted distance sum_i w[i] * (scale*q[i][j] - x[i])^2 exactly as ggml does
// (summed over i in order, no fused multiply-add), one candidate per lane, and returns the index of
// the first smallest distance below FLT_MAX (ggml's scan), or 0 where none is (ggml aborts there).
#pragma once

#include <cfloat>
#include <cstdint>

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

#if defined(GGQUANT_X86_SIMD)
uint32_t nearest_candidate_avx2(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                float scale);
uint32_t nearest_candidate_avx512(const float * q, uint32_t stride, uint32_t count, int dim, const float * x, const float * w,
                                  float scale);
#endif

}  // namespace ggq
