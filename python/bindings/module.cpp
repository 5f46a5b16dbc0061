#include "bindings.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "ggquant's C++ core (private: use the ggquant package)";
    ggq_py::init_errors(m);
    ggq_py::init_config(m);
    ggq_py::init_quant(m);
    ggq_py::init_gguf(m);
    ggq_py::init_safetensors(m);
    ggq_py::init_mlx(m);
}
