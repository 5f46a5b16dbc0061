// MLX quantization modes on NumPy arrays. The Python layer (ggquant.mlx) allocates the outputs and
// normalises shapes/dtypes; this file checks the buffers and runs the kernels with the GIL released.
#include "bindings.h"

#include "ggq-error.h"
#include "mlx-quant.h"

#include <pybind11/numpy.h>

#include <string>

namespace py = pybind11;

namespace ggq_py {

namespace {

ggq::src_dtype parse_dtype(const std::string & s, const char * fn) {
    if (s == "f32") return ggq::src_dtype::f32;
    if (s == "f16") return ggq::src_dtype::f16;
    if (s == "bf16") return ggq::src_dtype::bf16;
    ggq::fail(ggq::error_kind::value, fn, "unknown dtype '" + s + "'");
}

ggq::mlx_params make_params(int mode, int bits, int group_size, const py::object & global_scale) {
    ggq::mlx_params p;
    p.mode = static_cast<ggq::mlx_mode>(mode);
    p.bits = bits;
    p.group_size = group_size;
    if (!global_scale.is_none()) {
        p.has_global_scale = true;
        p.global_scale = global_scale.cast<float>();
    }
    return p;
}

// A C-contiguous 2-D array of rows x cols items of the given size.
void require(const py::array & a, int64_t rows, int64_t cols, size_t item, const char * fn, const char * what) {
    if (a.ndim() != 2 || !(a.flags() & py::array::c_style) || a.shape(0) != rows || a.shape(1) != cols ||
        (size_t)a.itemsize() != item) {
        ggq::fail(ggq::error_kind::shape, fn,
                  std::string(what) + " must be a C-contiguous " + std::to_string(rows) + " x " + std::to_string(cols) +
                      " array of " + std::to_string(item) + "-byte items");
    }
}

void require_writeable(const py::array & a, const char * fn, const char * what) {
    if (!a.writeable()) ggq::fail(ggq::error_kind::value, fn, std::string(what) + " is read-only");
}

void mlx_quantize(int mode, int bits, int group_size, const py::object & global_scale, const py::array & src,
                  const std::string & dtype, py::array w, py::array scales, const py::object & biases, int nthreads,
                  bool allow_nonfinite) {
    const char * fn = "mlx_quantize";
    const ggq::mlx_params p = make_params(mode, bits, group_size, global_scale);
    const ggq::src_dtype sd = parse_dtype(dtype, fn);
    const size_t item = sd == ggq::src_dtype::f32 ? 4 : 2;
    if (src.ndim() != 2) ggq::fail(ggq::error_kind::shape, fn, "source must be 2-D");
    const int64_t nrows = src.shape(0), n = src.shape(1);
    const int64_t words = ggq::mlx_row_words(p, n, fn);
    const int64_t groups = n / p.group_size;
    const bool affine = p.mode == ggq::mlx_mode::affine;
    require(src, nrows, n, item, fn, "source");
    require(w, nrows, words, 4, fn, "weight output");
    require(scales, nrows, groups, affine ? item : 1, fn, "scales output");
    require_writeable(w, fn, "weight output");
    require_writeable(scales, fn, "scales output");
    void * bp = nullptr;
    py::array b;
    if (affine) {
        if (biases.is_none()) ggq::fail(ggq::error_kind::value, fn, "affine needs a biases output");
        b = biases.cast<py::array>();
        require(b, nrows, groups, item, fn, "biases output");
        require_writeable(b, fn, "biases output");
        bp = b.mutable_data();
    }
    const void * sp = src.data();
    auto * wp = static_cast<uint32_t *>(w.mutable_data());
    void * scp = scales.mutable_data();
    {
        py::gil_scoped_release nogil;
        ggq::mlx_quantize_rows(p, sp, sd, nrows, n, wp, scp, bp, nthreads, allow_nonfinite);
    }
}

py::array_t<float> mlx_dequantize(int mode, int bits, int group_size, const py::object & global_scale,
                                  const py::array & w, const py::array & scales, const py::object & biases,
                                  const std::string & scale_dtype, const std::string & out_dtype, int nthreads) {
    const char * fn = "mlx_dequantize";
    const ggq::mlx_params p = make_params(mode, bits, group_size, global_scale);
    const ggq::src_dtype sd = parse_dtype(scale_dtype, fn);
    const ggq::src_dtype od = parse_dtype(out_dtype, fn);
    const bool affine = p.mode == ggq::mlx_mode::affine;
    if (w.ndim() != 2) ggq::fail(ggq::error_kind::shape, fn, "weight must be 2-D");
    const int64_t nrows = w.shape(0);
    if (p.bits <= 0 || w.shape(1) * 32 % p.bits != 0) {
        ggq::fail(ggq::error_kind::shape, fn, "the weight's last dimension does not hold whole codes");
    }
    const int64_t n = w.shape(1) * 32 / p.bits;
    const int64_t groups = ggq::mlx_row_groups(p, n, fn);
    const size_t item = affine ? (sd == ggq::src_dtype::f32 ? 4 : 2) : 1;
    require(w, nrows, w.shape(1), 4, fn, "weight");
    require(scales, nrows, groups, item, fn, "scales");
    const void * bp = nullptr;
    py::array b;
    if (affine) {
        if (biases.is_none()) ggq::fail(ggq::error_kind::value, fn, "affine needs biases");
        b = biases.cast<py::array>();
        require(b, nrows, groups, item, fn, "biases");
        bp = b.data();
    }
    py::array_t<float> out({nrows, n});
    const auto * wp = static_cast<const uint32_t *>(w.data());
    const void * scp = scales.data();
    float * op = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        ggq::mlx_dequantize_rows(p, wp, scp, bp, sd, od, op, nrows, n, nthreads);
    }
    return out;
}

}  // namespace

void init_mlx(py::module_ & m) {
    m.def("mlx_quantize", &mlx_quantize, py::arg("mode"), py::arg("bits"), py::arg("group_size"),
          py::arg("global_scale"), py::arg("src"), py::arg("dtype"), py::arg("w"), py::arg("scales"),
          py::arg("biases"), py::arg("nthreads") = 0, py::arg("allow_nonfinite") = false);
    m.def("mlx_dequantize", &mlx_dequantize, py::arg("mode"), py::arg("bits"), py::arg("group_size"),
          py::arg("global_scale"), py::arg("w"), py::arg("scales"), py::arg("biases"), py::arg("scale_dtype"),
          py::arg("out_dtype"), py::arg("nthreads") = 0);
    m.def("mlx_fp8_e4m3_encode", [](float x) { return ggq::mlx_fp8_e4m3_encode(x); }, py::arg("x"));
    m.def("mlx_fp8_e4m3_decode", [](uint8_t b) { return ggq::mlx_fp8_e4m3_decode(b); }, py::arg("b"));
}

}  // namespace ggq_py
