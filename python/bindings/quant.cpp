// quantize / dequantize on NumPy arrays. The Python layer normalises shapes and dtypes; this file
// checks what it is handed, allocates the result, and runs the kernel with the GIL released.
#include "bindings.h"

#include "ggq-block-check.h"
#include "ggq-error.h"
#include "ggq-quantize.h"
#include "ggq-types.h"

#include <pybind11/numpy.h>

#include <string>

namespace py = pybind11;

namespace ggq_py {

namespace {

ggq::src_dtype parse_dtype(const std::string & s) {
    if (s == "f32") return ggq::src_dtype::f32;
    if (s == "f16") return ggq::src_dtype::f16;
    if (s == "bf16") return ggq::src_dtype::bf16;
    ggq::fail(ggq::error_kind::value, "quantize", "unknown source dtype '" + s + "'");
}

void require_c_matrix(const py::array & a, const char * fn, const char * what) {
    if (a.ndim() != 2 || !(a.flags() & py::array::c_style)) {
        ggq::fail(ggq::error_kind::value, fn, std::string(what) + " must be a C-contiguous 2-D array");
    }
}

py::array_t<uint8_t> quantize(int32_t type, const py::array & src, const std::string & dtype, const py::object & imatrix,
                              int nthreads, bool allow_nonfinite, int simd) {
    require_c_matrix(src, "quantize", "source");
    const ggq::src_dtype sd = parse_dtype(dtype);
    if ((size_t)src.itemsize() != (sd == ggq::src_dtype::f32 ? 4u : 2u)) {
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
    if (bad.row >= 0) {
        const ggq::type_traits & tt = ggq::get_type_traits(type);
        ggq::fail(ggq::error_kind::nonfinite, "quantize",
                  "row " + std::to_string(bad.row) + ", block " + std::to_string(bad.block) + " (values " +
                      std::to_string(bad.block * tt.blck_size) + " to " + std::to_string((bad.block + 1) * tt.blck_size - 1) +
                      "): the finite input is too large for " + tt.name +
                      ", whose block decodes to Inf or NaN (pass allow_nonfinite=True to keep ggml's bytes)");
    }
    return out;
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
