// Maps ggq::error kinds onto the exception classes of ggquant.errors (all ValueError subclasses).
#include "bindings.h"

#include "ggq-error.h"

namespace py = pybind11;

namespace ggq_py {

namespace {

const char * class_for(ggq::error_kind kind) {
    switch (kind) {
        case ggq::error_kind::shape: return "ShapeError";
        case ggq::error_kind::nonfinite: return "NonFiniteError";
        case ggq::error_kind::type: return "UnsupportedTypeError";
        case ggq::error_kind::gguf: return "GGUFError";
        case ggq::error_kind::safetensors: return "SafetensorsError";
        case ggq::error_kind::io: return "GGQuantIOError";
        case ggq::error_kind::value: break;
    }
    return "GGQuantError";
}

}  // namespace

void init_errors(py::module_ &) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const ggq::error & e) {
            py::object cls = py::module_::import("ggquant.errors").attr(class_for(e.kind()));
            PyErr_SetString(cls.ptr(), e.what());
        }
    });
}

}  // namespace ggq_py
