// Thread count and a row-parallel loop. Work items are independent rows, so results never depend on
// the number of threads or on scheduling.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>

#if defined(GGQUANT_USE_OPENMP)
#include <omp.h>
#endif

namespace ggq {

bool openmp_enabled();
int get_num_threads();        // default thread count for kernels (OpenMP's default unless set)
void set_num_threads(int n);  // n <= 0 restores the default
int resolve_threads(int n);   // n > 0 as given, otherwise the default

// Runs body(i) for i in [0, n) on up to nthreads threads. The first exception thrown by any body
// is rethrown on the calling thread after all threads finish.
template <typename Body>
void parallel_for(int64_t n, int nthreads, Body && body) {
    std::exception_ptr first;
    std::mutex mu;
#if defined(GGQUANT_USE_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1 && n > 1)
#endif
    for (int64_t i = 0; i < n; ++i) {
        try {
            body(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu);
            if (!first) {
                first = std::current_exception();
            }
        }
    }
    (void)nthreads;
    if (first) {
        std::rethrow_exception(first);
    }
}

}  // namespace ggq
