#include "ggq-simd.h"

#include "ggq-error.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace ggq {

namespace {

constexpr const char * k_level_names[GGQ_SIMD_COUNT] = {"generic", "avx2", "avx512"};

bool cpu_supports(simd_level level) {
    switch (level) {
        case GGQ_SIMD_GENERIC:
            return true;
#if defined(GGQUANT_X86_SIMD)
        case GGQ_SIMD_AVX2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        case GGQ_SIMD_AVX512:
            return cpu_supports(GGQ_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq");
#endif
        default:
            return false;
    }
}

simd_level initial_level() {
    const char * env = std::getenv("GGQUANT_SIMD");
    if (env == nullptr || *env == '\0') {
        return simd_best_level();
    }
    const simd_level wanted = simd_level_from_name(env);
    // asking for more than the machine has falls back to the best available, never crashes
    return simd_level_available(wanted) ? wanted : simd_best_level();
}

std::atomic<int> & active() {
    static std::atomic<int> level{initial_level()};
    return level;
}

}  // namespace

const char * simd_level_name(simd_level level) {
    if (level < 0 || level >= GGQ_SIMD_COUNT) {
        return "unknown";
    }
    return k_level_names[level];
}

simd_level simd_level_from_name(const char * name) {
    for (int i = 0; i < GGQ_SIMD_COUNT; ++i) {
        if (std::strcmp(name, k_level_names[i]) == 0) {
            return (simd_level)i;
        }
    }
    fail(error_kind::value, "simd_level", std::string("unknown SIMD level '") + name + "' (expected generic, avx2 or avx512)");
}

bool simd_level_available(simd_level level) { return cpu_supports(level); }

simd_level simd_best_level() {
    for (int i = GGQ_SIMD_COUNT - 1; i > 0; --i) {
        if (cpu_supports((simd_level)i)) {
            return (simd_level)i;
        }
    }
    return GGQ_SIMD_GENERIC;
}

simd_level simd_active_level() { return (simd_level)active().load(std::memory_order_relaxed); }

void simd_set_level(simd_level level) {
    if (!simd_level_available(level)) {
        fail(error_kind::value, "set_simd_level",
             std::string("SIMD level '") + simd_level_name(level) + "' is not available on this CPU or build");
    }
    active().store(level, std::memory_order_relaxed);
}

}  // namespace ggq
