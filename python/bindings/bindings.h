// Binding translation units: each area registers its functions on the module. No kernel code here.
#pragma once

#include <pybind11/pybind11.h>

namespace ggq_py {

void init_errors(pybind11::module_ & m);
void init_config(pybind11::module_ & m);
void init_quant(pybind11::module_ & m);
void init_gguf(pybind11::module_ & m);
void init_safetensors(pybind11::module_ & m);
void init_mlx(pybind11::module_ & m);

}  // namespace ggq_py
