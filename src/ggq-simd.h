// Run-time choice of the vector instruction set. Every level produces the same bytes as the scalar
// reference; the level only changes speed.
#pragma once

namespace ggq {

enum simd_level : int {
    GGQ_SIMD_GENERIC = 0,  // portable scalar reference
    GGQ_SIMD_AVX2 = 1,
    GGQ_SIMD_AVX512 = 2,
    GGQ_SIMD_COUNT,
};

const char * simd_level_name(simd_level level);
simd_level simd_level_from_name(const char * name);  // throws ggq::error on an unknown name

// Highest level both compiled in and supported by this CPU.
simd_level simd_best_level();
// Level in use: simd_best_level(), or GGQUANT_SIMD from the environment (read once), or the last
// set_simd_level() call.
simd_level simd_active_level();
// Throws if the CPU or the build lacks `level`.
void simd_set_level(simd_level level);
bool simd_level_available(simd_level level);

}  // namespace ggq
