#include "ggq-parallel.h"

#include <atomic>

namespace ggq {

namespace {
std::atomic<int> g_threads{0};  // 0: use the OpenMP default
}

bool openmp_enabled() {
#if defined(GGQUANT_USE_OPENMP)
    return true;
#else
    return false;
#endif
}

int get_num_threads() {
    const int n = g_threads.load(std::memory_order_relaxed);
    if (n > 0) {
        return n;
    }
#if defined(GGQUANT_USE_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

int resolve_threads(int n) { return n > 0 ? n : get_num_threads(); }

}  // namespace ggq
