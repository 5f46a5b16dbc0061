// Maps ggq::error kinds onto the exception classes of ggquant.errors (all ValueError subclasses).
#include "bindings.h"

#include "ggq-error.h"

#include <string>

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
            // messages quote untrusted names; a byte that is not UTF-8 must not turn the error
            // into a UnicodeDecodeError
            const std::string msg = e.what();
            PyObject * text = PyUnicode_DecodeUTF8(msg.data(), (Py_ssize_t)msg.size(), "backslashreplace");
            if (text == nullptr) return;  // MemoryError is already set
            PyErr_SetObject(cls.ptr(), text);
            Py_DECREF(text);
        }
    });
}

}  // namespace ggq_py
