// quantize / dequantize on NumPy arrays. The Python layer normalises shapes and dtypes; this file
// checks what it is handed, allocates the result, and runs the kernel with the GIL released.
#include "bindings.h"

#include "ggq-block-check.h"
#include "ggq-error.h"
#include "ggq-quantize.h"
#include "ggq-types.h"

#include <pybind11/numpy.h>

#include <string>
#include <vector>

namespace py = pybind11;

namespace ggq_py {

namespace {

ggq::row_dtype parse_dtype(const std::string & s) {
    if (s == "f32") return ggq::row_dtype::f32;
    if (s == "f16") return ggq::row_dtype::f16;
    if (s == "bf16") return ggq::row_dtype::bf16;
    if (s == "f8_e4m3") return ggq::row_dtype::f8_e4m3;
    if (s == "f8_e5m2") return ggq::row_dtype::f8_e5m2;
    ggq::fail(ggq::error_kind::value, "quantize", "unknown source dtype '" + s + "'");
}

void require_c_matrix(const py::array & a, const char * fn, const char * what) {
    if (a.ndim() != 2 || !(a.flags() & py::array::c_style)) {
        ggq::fail(ggq::error_kind::value, fn, std::string(what) + " must be a C-contiguous 2-D array");
    }
}

// A finite input whose blocks decode to Inf/NaN (scales past the format's range): an error unless
// the caller keeps ggml's bytes with allow_nonfinite.
[[noreturn]] void fail_nonfinite_output(const char * fn, const std::string & where, int32_t type, const ggq::block_position & bad) {
    const ggq::type_traits & tt = ggq::get_type_traits(type);
    ggq::fail(ggq::error_kind::nonfinite, fn,
              where + "row " + std::to_string(bad.row) + ", block " + std::to_string(bad.block) + " (values " +
                  std::to_string(bad.block * tt.blck_size) + " to " + std::to_string((bad.block + 1) * tt.blck_size - 1) +
                  "): the finite input is too large for " + tt.name +
                  ", whose block decodes to Inf or NaN (pass allow_nonfinite=True to keep ggml's bytes)");
}

py::array_t<uint8_t> quantize(int32_t type, const py::array & src, const std::string & dtype, const py::object & imatrix,
                              int nthreads, bool allow_nonfinite, int simd) {
    require_c_matrix(src, "quantize", "source");
    const ggq::row_dtype sd = parse_dtype(dtype);
    if ((size_t)src.itemsize() != ggq::row_itemsize(sd)) {
        ggq::fail(ggq::error_kind::value, "quantize", "source item size does not match dtype " + dtype);
    }
    const int64_t nrows = src.shape(0);
    const int64_t n_per_row = src.shape(1);
    const size_t rsize = ggq::row_size(type, n_per_row);
    py::array_t<float, py::array::c_style> weights;
    ggq::quantize_options opt;
    if (!imatrix.is_none()) {
        weights = py::array_t<float, py::array::c_style>::ensure(imatrix);
        if (!weights || weights.ndim() != 1 || weights.shape(0) != n_per_row) {
            ggq::fail(ggq::error_kind::shape, "quantize", "imatrix must be a 1-D float32 array of " + std::to_string(n_per_row) +
                                                          " weights, one per column");
        }
        opt.imatrix = weights.data();
    }
    opt.nthreads = nthreads;
    opt.allow_nonfinite = allow_nonfinite;
    opt.simd = simd;
    py::array_t<uint8_t> out({nrows, (int64_t)rsize});
    const void * sp = src.data();
    void * dp = out.mutable_data();
    ggq::block_position bad;
    {
        py::gil_scoped_release nogil;
        ggq::quantize_rows(type, sp, sd, dp, nrows, n_per_row, opt);
        if (!allow_nonfinite) bad = ggq::first_nonfinite_block(type, dp, nrows, n_per_row, nthreads);
    }
    if (bad.row >= 0) fail_nonfinite_output("quantize", "", type, bad);
    return out;
}

// jobs: (type, src, dtype, n_per_row, out, out_offset, imatrix or None, label) tuples. `src` is a
// C-contiguous array of whole rows (a memory map works: it is only read); its rows' blocks are written
// into the writable buffer `out` from byte `out_offset` on. Returns the bytes written per job.
py::list quantize_batch(const py::list & jobs, int nthreads, bool allow_nonfinite, int simd) {
    std::vector<ggq::quantize_job> js;
    std::vector<py::array> keep_src;
    std::vector<py::buffer_info> keep_out;
    std::vector<py::array_t<float, py::array::c_style>> keep_w;
    js.reserve(jobs.size());
    keep_out.reserve(jobs.size());
    for (const py::handle & h : jobs) {
        const auto t = h.cast<py::tuple>();
        if (t.size() != 8) ggq::fail(ggq::error_kind::value, "quantize_batch", "each job is an 8-tuple");
        ggq::quantize_job j;
        j.type = t[0].cast<int32_t>();
        j.label = t[7].cast<std::string>();
        const std::string where = j.label.empty() ? std::string() : j.label + ": ";
        const py::array src = t[1].cast<py::array>();
        j.dtype = parse_dtype(t[2].cast<std::string>());
        j.n_per_row = t[3].cast<int64_t>();
        if (!(src.flags() & py::array::c_style) || (size_t)src.itemsize() != ggq::row_itemsize(j.dtype)) {
            ggq::fail(ggq::error_kind::value, "quantize_batch", where + "the source must be C-contiguous with items of dtype " + t[2].cast<std::string>());
        }
        if (j.n_per_row <= 0 || src.size() % j.n_per_row != 0) {
            ggq::fail(ggq::error_kind::shape, "quantize_batch", where + std::to_string(src.size()) + " values are not whole rows of " + std::to_string(j.n_per_row));
        }
        j.nrows = src.size() / j.n_per_row;
        j.src = src.data();
        keep_src.push_back(src);
        try {
            keep_out.push_back(t[4].cast<py::buffer>().request(true));
        } catch (const py::error_already_set &) {
            ggq::fail(ggq::error_kind::value, "quantize_batch", where + "the output must be a writable buffer");
        } catch (const py::cast_error &) {
            ggq::fail(ggq::error_kind::value, "quantize_batch", where + "the output must be a writable buffer");
        }
        const py::buffer_info & ob = keep_out.back();
        const int64_t off = t[5].cast<int64_t>();
        const size_t need = (size_t)j.nrows * ggq::row_size(j.type, j.n_per_row);
        const size_t have = (size_t)(ob.size * ob.itemsize);
        if (off < 0 || (size_t)off > have || need > have - (size_t)off) {
            ggq::fail(ggq::error_kind::shape, "quantize_batch", where + "the output buffer of " + std::to_string(have) + " bytes cannot hold " +
                                                                  std::to_string(need) + " bytes at offset " + std::to_string(off));
        }
        j.dst = static_cast<char *>(ob.ptr) + off;
        if (!t[6].is_none()) {
            keep_w.push_back(py::array_t<float, py::array::c_style>::ensure(t[6]));
            const auto & w = keep_w.back();
            if (!w || w.ndim() != 1 || w.shape(0) != j.n_per_row) {
                ggq::fail(ggq::error_kind::shape, "quantize_batch", where + "imatrix must be a 1-D float32 array of " + std::to_string(j.n_per_row) + " weights");
            }
            j.imatrix = w.data();
        }
        js.push_back(std::move(j));
    }
    ggq::quantize_options opt;
    opt.nthreads = nthreads;
    opt.allow_nonfinite = allow_nonfinite;
    opt.simd = simd;
    size_t bad_job = js.size();
    ggq::block_position bad;
    {
        py::gil_scoped_release nogil;
        ggq::quantize_batch(js.data(), js.size(), opt);
        for (size_t k = 0; k < js.size() && !allow_nonfinite; ++k) {
            bad = ggq::first_nonfinite_block(js[k].type, js[k].dst, js[k].nrows, js[k].n_per_row, nthreads);
            if (bad.row >= 0) {
                bad_job = k;
                break;
            }
        }
    }
    if (bad_job < js.size()) {
        fail_nonfinite_output("quantize_batch", js[bad_job].label.empty() ? std::string() : js[bad_job].label + ": ",
                              js[bad_job].type, bad);
    }
    py::list sizes;
    for (const auto & j : js) sizes.append((size_t)j.nrows * ggq::row_size(j.type, j.n_per_row));
    return sizes;
}

py::array_t<float> dequantize(int32_t type, const py::array & data, int64_t n_per_row, int nthreads) {
    require_c_matrix(data, "dequantize", "data");
    const size_t rsize = ggq::row_size(type, n_per_row);
    if (data.itemsize() != 1 || (size_t)data.shape(1) != rsize) {
        ggq::fail(ggq::error_kind::shape, "dequantize", "rows of " + std::to_string(n_per_row) + " values take " +
                                                            std::to_string(rsize) + " bytes, got rows of " +
                                                            std::to_string(data.shape(1) * data.itemsize()) + " bytes");
    }
    const int64_t nrows = data.shape(0);
    py::array_t<float> out({nrows, n_per_row});
    const void * sp = data.data();
    float * dp = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        ggq::dequantize_rows(type, sp, dp, nrows, n_per_row, nthreads);
    }
    return out;
}

py::list type_table() {
    py::list rows;
    for (int32_t id = 0; id < ggq::GGQ_TYPE_COUNT; ++id) {
        const ggq::type_traits & t = ggq::get_type_traits(id);
        py::dict d;
        d["id"] = id;
        d["name"] = t.name;
        d["blck_size"] = t.blck_size;
        d["type_size"] = t.type_size;
        d["is_quantized"] = t.is_quantized;
        d["requires_imatrix"] = t.requires_imatrix;
        d["can_quantize"] = t.quantize[ggq::GGQ_SIMD_GENERIC] != nullptr;
        d["can_dequantize"] = t.to_float != nullptr;
        py::list levels;
        for (int l = 0; l < ggq::GGQ_SIMD_COUNT; ++l) {
            if (t.quantize[l] != nullptr) levels.append(ggq::simd_level_name((ggq::simd_level)l));
        }
        d["simd_levels"] = levels;
        rows.append(d);
    }
    return rows;
}

}  // namespace

void init_quant(py::module_ & m) {
    m.def("quantize", &quantize, py::arg("type"), py::arg("src"), py::arg("dtype"), py::arg("imatrix") = py::none(),
          py::arg("nthreads") = 0, py::arg("allow_nonfinite") = false, py::arg("simd") = -1);
    m.def("quantize_batch", &quantize_batch, py::arg("jobs"), py::arg("nthreads") = 0, py::arg("allow_nonfinite") = false,
          py::arg("simd") = -1);
    m.def("dequantize", &dequantize, py::arg("type"), py::arg("data"), py::arg("n_per_row"), py::arg("nthreads") = 0);
    // (row, block) of the first block of quantized rows that decodes to Inf/NaN, or None
    m.def("nonfinite_block", [](int32_t type, const py::array & data, int64_t n_per_row, int nthreads) -> py::object {
        require_c_matrix(data, "nonfinite_block", "data");
        if (data.itemsize() != 1 || (size_t)data.shape(1) != ggq::row_size(type, n_per_row)) {
            ggq::fail(ggq::error_kind::shape, "nonfinite_block", "data must be uint8 rows of row_size(type, n_per_row) bytes");
        }
        const void * p = data.data();
        const int64_t nrows = data.shape(0);
        ggq::block_position pos;
        {
            py::gil_scoped_release nogil;
            pos = ggq::first_nonfinite_block(type, p, nrows, n_per_row, nthreads);
        }
        if (pos.row < 0) return py::none();
        return py::make_tuple(pos.row, pos.block);
    }, py::arg("type"), py::arg("data"), py::arg("n_per_row"), py::arg("nthreads") = 0);
    m.def("row_size", [](int32_t type, int64_t n) { return ggq::row_size(type, n); }, py::arg("type"), py::arg("n"));
    m.def("type_table", &type_table);
}

}  // namespace ggq_py
