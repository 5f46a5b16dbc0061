// GGUF reader/writer bindings. Parsing and tensor writes run with the GIL released; values are
// handed to Python as raw bytes/offsets and decoded in ggquant/gguf.py.
#include "bindings.h"

#include "ggq-error.h"
#include "io/gguf.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace py = pybind11;

namespace ggq_py {

namespace {

struct gguf_handle {
    std::shared_ptr<ggq::gguf_file> file;
};

}  // namespace

void init_gguf(py::module_ & m) {
    py::class_<gguf_handle>(m, "GGUFHandle", py::buffer_protocol())
        .def_buffer([](gguf_handle & h) -> py::buffer_info {
            const auto & map = h.file->map;
            // a zero-length buffer still needs a valid pointer
            static const uint8_t empty = 0;
            const uint8_t * p = map && map->size() ? map->data() : &empty;
            return py::buffer_info(const_cast<uint8_t *>(p), 1, py::format_descriptor<uint8_t>::format(), 1,
                                   {(py::ssize_t)(map ? map->size() : 0)}, {1}, /*readonly=*/true);
        })
        .def_property_readonly("version", [](const gguf_handle & h) { return h.file->version; })
        .def_property_readonly("alignment", [](const gguf_handle & h) { return h.file->alignment; })
        .def_property_readonly("data_start", [](const gguf_handle & h) { return h.file->data_start; })
        .def("kvs", [](const gguf_handle & h) {
            py::list out;
            for (const auto & kv : h.file->kvs) {
                py::list strs;
                for (const auto & s : kv.strings) strs.append(py::bytes(s));
                out.append(py::make_tuple(py::bytes(kv.key), kv.type, kv.elem_type, kv.count, kv.offset, strs));
            }
            return out;
        })
        .def_property_readonly("n_tensors", [](const gguf_handle & h) { return h.file->tensors.size(); })
        // (name, type, ne, offset, nbytes) of tensors [start, stop): the reader asks in chunks, so
        // a file of a million tensors never has a million Python objects alive at once
        .def("tensors", [](const gguf_handle & h, size_t start, size_t stop) {
            const auto & ts = h.file->tensors;
            stop = std::min(stop, ts.size());
            py::list out;
            for (size_t i = start; i < stop; ++i) {
                const auto & t = ts[i];
                py::tuple ne(t.n_dims);
                for (uint32_t d = 0; d < t.n_dims; ++d) ne[d] = py::int_(t.ne[d]);
                out.append(py::make_tuple(py::bytes(t.name), t.type, std::move(ne), t.offset, t.nbytes));
            }
            return out;
        }, py::arg("start"), py::arg("stop"))
        .def("find_tensor", [](const gguf_handle & h, const std::string & name) -> py::ssize_t {
            const auto it = h.file->tensor_index.find(name);
            return it == h.file->tensor_index.end() ? -1 : (py::ssize_t)it->second;
        }, py::arg("name"));

    m.def("gguf_read", [](const std::string & path) {
        std::shared_ptr<ggq::gguf_file> f;
        {
            py::gil_scoped_release nogil;
            f = std::make_shared<ggq::gguf_file>(ggq::gguf_read(path));
        }
        return gguf_handle{std::move(f)};
    }, py::arg("path"));

    m.def("prefault_for_write", [](const py::buffer & b) {
        py::buffer_info info = b.request(true);
        const size_t n = (size_t)(info.size * info.itemsize);
        py::gil_scoped_release nogil;
        ggq::prefault_for_write(info.ptr, n);
    }, py::arg("buffer"));

    m.def("gguf_parse_bytes", [](const py::bytes & data) {
        const std::string s = data;  // for tests and fuzzing: validate without a file
        py::gil_scoped_release nogil;
        ggq::gguf_parse(reinterpret_cast<const uint8_t *>(s.data()), s.size());
    }, py::arg("data"));

    py::class_<ggq::gguf_writer>(m, "GGUFWriterCore")
        .def(py::init<const std::string &, uint32_t>(), py::arg("path"), py::arg("alignment"))
        .def("add_kv", [](ggq::gguf_writer & w, const std::string & key, int32_t type, int32_t elem_type, uint64_t count,
                          const py::bytes & payload, const std::vector<std::string> & strings) {
            const std::string p = payload;
            w.add_kv(key, type, elem_type, count, p.data(), p.size(), strings);
        })
        .def("add_tensor_info", [](ggq::gguf_writer & w, const std::string & name, const std::vector<int64_t> & ne, int32_t type) {
            w.add_tensor_info(name, (uint32_t)ne.size(), ne.data(), type);
        })
        .def("write_header", [](ggq::gguf_writer & w) {
            py::gil_scoped_release nogil;
            w.write_header();
        })
        .def("write_tensor_data", [](ggq::gguf_writer & w, const py::buffer & data) {
            py::buffer_info info = data.request();
            if (info.ndim > 0) {
                // must be one contiguous run of bytes
                py::ssize_t expect = info.itemsize;
                for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
                    if (info.shape[d] > 1 && info.strides[d] != expect) {
                        throw ggq::error(ggq::error_kind::value, "[gguf_write] tensor data must be C-contiguous");
                    }
                    expect *= info.shape[d];
                }
            }
            const size_t n = (size_t)(info.size * info.itemsize);
            const void * p = info.ptr;
            py::gil_scoped_release nogil;
            w.write_tensor_data(p, n);
        })
        .def("tensor_buffer", [](ggq::gguf_writer & w, size_t i) {
            return tensor_place(w, i, [&](size_t k) { return (size_t)w.info(k).nbytes; });
        }, py::arg("index"))
        .def("commit", [](ggq::gguf_writer & w) {
            py::gil_scoped_release nogil;
            w.commit();
        })
        .def("abort", &ggq::gguf_writer::abort)
        .def_property_readonly("n_tensors", &ggq::gguf_writer::n_tensors)
        .def_property_readonly("n_written", &ggq::gguf_writer::n_written);
}

}  // namespace ggq_py
