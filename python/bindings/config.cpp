#include "bindings.h"

#include "ggq-parallel.h"
#include "ggq-simd.h"

#include <string>

namespace py = pybind11;

namespace ggq_py {

void init_config(py::module_ & m) {
    m.def("build_info", [] {
        py::dict d;
        d["version"] = GGQUANT_VERSION;
        d["openmp"] = ggq::openmp_enabled();
        d["num_threads"] = ggq::get_num_threads();
        d["simd_best"] = ggq::simd_level_name(ggq::simd_best_level());
        d["simd_active"] = ggq::simd_level_name(ggq::simd_active_level());
        py::list levels;
        for (int l = 0; l < ggq::GGQ_SIMD_COUNT; ++l) {
            if (ggq::simd_level_available((ggq::simd_level)l)) levels.append(ggq::simd_level_name((ggq::simd_level)l));
        }
        d["simd_available"] = levels;
#if defined(__clang__)
        d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
        d["compiler"] = std::string("gcc ") + __VERSION__;
#else
        d["compiler"] = "unknown";
#endif
        return d;
    });
    m.def("get_num_threads", &ggq::get_num_threads);
    m.def("set_num_threads", &ggq::set_num_threads, py::arg("n"));
    m.def("get_simd_level", [] { return std::string(ggq::simd_level_name(ggq::simd_active_level())); });
    m.def("set_simd_level", [](const std::string & name) { ggq::simd_set_level(ggq::simd_level_from_name(name.c_str())); },
          py::arg("name"));
}

}  // namespace ggq_py
