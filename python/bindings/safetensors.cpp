// safetensors reader and streaming writer. Tensor data goes out as read-only uint8 NumPy views of
// the memory map (the view keeps the file object alive); python/ggquant/safetensors.py gives them
// their dtype and shape. File opening, header parsing, conversion and writing run without the GIL.
#include "bindings.h"

#include "ggq-error.h"
#include "ggq-parallel.h"
#include "io/safetensors.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

namespace py = pybind11;

namespace ggq_py {

namespace {

py::tuple shape_tuple(const std::vector<uint64_t> & shape) {
    py::tuple t(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
    return t;
}

py::array readonly_bytes(const uint8_t * p, uint64_t n, py::handle base) {
    if (n > (uint64_t)PTRDIFF_MAX) ggq::fail(ggq::error_kind::value, "safetensors_get", "tensor too large for this platform");
    py::array a(py::dtype::of<uint8_t>(), {(py::ssize_t)n}, {(py::ssize_t)1}, p, base);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
}

ggq::st_dtype dtype_from(const std::string & s) {
    ggq::st_dtype d;
    if (!ggq::st_dtype_from_name(s, &d)) ggq::fail(ggq::error_kind::type, "safetensors", "unknown safetensors dtype '" + s + "'");
    return d;
}

const void * contiguous_data(const py::array & a, const char * fn) {
    if (!(a.flags() & py::array::c_style)) ggq::fail(ggq::error_kind::safetensors, fn, "tensor data must be C-contiguous");
    return a.data();
}

}  // namespace

void init_safetensors(py::module_ & m) {
    using ggq::safetensors_file;
    py::class_<safetensors_file>(m, "_SafetensorsFile")
        .def(py::init([](const std::string & path) {
                 std::unique_ptr<safetensors_file> f;
                 {
                     py::gil_scoped_release nogil;
                     f = std::make_unique<safetensors_file>(path);
                 }
                 return f;
             }),
             py::arg("path"))
        .def_property_readonly("path", &safetensors_file::path)
        .def_property_readonly("file_size", &safetensors_file::size)
        .def_property_readonly("data_start", [](const safetensors_file & f) { return f.header().data_start; })
        .def("metadata",
             [](const safetensors_file & f) -> py::object {
                 if (!f.header().has_metadata) return py::none();
                 py::dict d;
                 for (const auto & kv : f.header().metadata) d[py::str(kv.first)] = py::str(kv.second);
                 return d;
             })
        .def("tensor_infos",
             [](const safetensors_file & f) {
                 // (name, dtype, shape, begin, end) in file (offset) order
                 py::list out;
                 for (const auto & t : f.header().tensors) {
                     out.append(py::make_tuple(py::str(t.name), ggq::st_dtype_name(t.dtype), shape_tuple(t.shape), t.begin, t.end));
                 }
                 return out;
             })
        .def(
            "raw",
            [](py::object self, const std::string & name) {
                const safetensors_file & f = self.cast<const safetensors_file &>();
                const ggq::st_tensor_info & t = f.at(name);
                return readonly_bytes(f.data(t), t.end - t.begin, self);
            },
            py::arg("name"))
        .def(
            "to_float32",
            [](const safetensors_file & f, const std::string & name, int nthreads) {
                const ggq::st_tensor_info & t = f.at(name);
                const uint64_t bits = ggq::st_dtype_bits(t.dtype);
                const uint64_t n = bits == 0 ? 0 : (t.end - t.begin) * 8 / bits;
                std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
                py::array_t<float> out(shape);
                float * dst = out.mutable_data();
                const uint8_t * src = f.data(t);
                const ggq::st_dtype dt = t.dtype;
                {
                    py::gil_scoped_release nogil;
                    constexpr uint64_t chunk = uint64_t(1) << 20;
                    const int64_t nchunks = (int64_t)((n + chunk - 1) / chunk);
                    ggq::parallel_for(nchunks, ggq::resolve_threads(nthreads), [&](int64_t c) {
                        const uint64_t i0 = (uint64_t)c * chunk;
                        const uint64_t k = n - i0 < chunk ? n - i0 : chunk;
                        ggq::st_to_float32(dt, src + i0 * bits / 8, dst + i0, k);
                    });
                    if (nchunks == 0) ggq::st_to_float32(dt, src, dst, 0);  // still rejects F4/F6
                }
                return out;
            },
            py::arg("name"), py::arg("nthreads") = 0);

    // Validates a whole file image held in memory (tests and fuzzing); returns the tensor infos.
    m.def(
        "_safetensors_parse",
        [](const py::bytes & image) {
            const std::string_view v = image;
            ggq::st_header h;
            {
                py::gil_scoped_release nogil;
                h = ggq::parse_safetensors(reinterpret_cast<const uint8_t *>(v.data()), v.size());
            }
            py::list out;
            for (const auto & t : h.tensors) {
                out.append(py::make_tuple(py::str(t.name), ggq::st_dtype_name(t.dtype), shape_tuple(t.shape), t.begin, t.end));
            }
            return out;
        },
        py::arg("image"));

    using ggq::safetensors_writer;
    py::class_<safetensors_writer>(m, "_SafetensorsWriter")
        .def(py::init([](const std::string & path, const std::vector<std::tuple<std::string, std::string, std::vector<uint64_t>>> & specs,
                         const py::object & metadata) {
                 std::vector<ggq::st_tensor_spec> s;
                 s.reserve(specs.size());
                 for (const auto & [name, dtype, shape] : specs) s.push_back({name, dtype_from(dtype), shape});
                 std::vector<std::pair<std::string, std::string>> md;
                 const bool has_md = !metadata.is_none();
                 if (has_md) {
                     for (const auto & kv : metadata.cast<py::dict>()) {
                         if (!py::isinstance<py::str>(kv.first) || !py::isinstance<py::str>(kv.second)) {
                             ggq::fail(ggq::error_kind::safetensors, "safetensors_write", "metadata keys and values must be str");
                         }
                         md.emplace_back(kv.first.cast<std::string>(), kv.second.cast<std::string>());
                     }
                 }
                 std::unique_ptr<safetensors_writer> w;
                 {
                     py::gil_scoped_release nogil;
                     w = std::make_unique<safetensors_writer>(path, std::move(s), has_md ? &md : nullptr);
                 }
                 return w;
             }),
             py::arg("path"), py::arg("specs"), py::arg("metadata") = py::none())
        .def("order",
             [](const safetensors_writer & w) {
                 py::list out;
                 for (const size_t i : w.order()) out.append(py::str(w.specs()[i].name));
                 return out;
             })
        .def_property_readonly("n_written", &safetensors_writer::n_written)
        .def_property_readonly("offset", &safetensors_writer::total_size)
        .def(
            "write_tensor",
            [](safetensors_writer & w, const std::string & name, const py::array & data) {
                const void * p = contiguous_data(data, "safetensors_write");
                const size_t nbytes = (size_t)data.nbytes();
                py::gil_scoped_release nogil;
                w.write_tensor(name, p, nbytes);
            },
            py::arg("name"), py::arg("data"))
        .def("commit",
             [](safetensors_writer & w) {
                 py::gil_scoped_release nogil;
                 w.commit();
             })
        .def("tensor_buffer", [](safetensors_writer & w, size_t i) {
            return tensor_place(w, i, [&](size_t k) { return (size_t)w.expected_nbytes(k); });
        }, py::arg("index"))
        .def("release_tensor", &safetensors_writer::release_tensor, py::arg("index"))
        .def("abort", &safetensors_writer::abort);
}

}  // namespace ggq_py
