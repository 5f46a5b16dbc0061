// Binding translation units: each area registers its functions on the module. No kernel code here.
#pragma once

#include "io/file-util.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

namespace ggq_py {

// A writable uint8 array of n bytes at p inside an output file's mapping (None where there is none):
// the array keeps the mapping alive, so a view outliving its writer never points at unmapped memory.
inline pybind11::object mapped_bytes(const std::shared_ptr<ggq::output_map> & map, uint8_t * p, size_t n) {
    if (!map || p == nullptr) return pybind11::none();
    auto * owner = new std::shared_ptr<ggq::output_map>(map);
    pybind11::capsule base(owner, [](void * o) { delete static_cast<std::shared_ptr<ggq::output_map> *>(o); });
    return pybind11::array_t<uint8_t>({(pybind11::ssize_t)n}, {(pybind11::ssize_t)1}, p, base);
}

void init_errors(pybind11::module_ & m);
void init_config(pybind11::module_ & m);
void init_quant(pybind11::module_ & m);
void init_gguf(pybind11::module_ & m);
void init_safetensors(pybind11::module_ & m);
void init_mlx(pybind11::module_ & m);

}  // namespace ggq_py
