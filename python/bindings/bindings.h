// Binding translation units: each area registers its functions on the module. No kernel code here.
#pragma once

#include "io/file-util.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

namespace ggq_py {

// Tensor i's place in a writer's preallocated, mapped output: a writable uint8 array of its bytes
// that keeps the mapping alive (a view outliving its writer never points at unmapped memory), or
// None where the file system cannot preallocate. W: gguf_writer or safetensors_writer.
template <typename W, typename NBytes>
pybind11::object tensor_place(W & w, size_t i, NBytes nbytes) {
    uint8_t * p;
    {
        pybind11::gil_scoped_release nogil;  // the first call preallocates the whole file
        p = w.tensor_data(i);
    }
    const std::shared_ptr<ggq::output_map> & map = w.map_data();
    if (!map || p == nullptr) return pybind11::none();
    auto * owner = new std::shared_ptr<ggq::output_map>(map);
    pybind11::capsule base(owner, [](void * o) { delete static_cast<std::shared_ptr<ggq::output_map> *>(o); });
    return pybind11::array_t<uint8_t>({(pybind11::ssize_t)nbytes(i)}, {(pybind11::ssize_t)1}, p, base);
}

void init_errors(pybind11::module_ & m);
void init_config(pybind11::module_ & m);
void init_quant(pybind11::module_ & m);
void init_gguf(pybind11::module_ & m);
void init_safetensors(pybind11::module_ & m);
void init_mlx(pybind11::module_ & m);

}  // namespace ggq_py
