// libFuzzer harness for the safetensors reader (src/io/safetensors.cpp) and, through it, the JSON
// reader. Any input must either parse or throw ggq::error; crashes, sanitizer reports, leaks and
// timeouts are findings. A parsed header must also survive a write-side round trip: the header the
// writer builds from the parsed tensors parses back to the same tensors.
// Build and run: tests/fuzz/build_fuzz_safetensors.sh
#include "ggq-error.h"
#include "io/safetensors.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

void round_trip(const ggq::st_header & h) {
    std::vector<ggq::st_tensor_spec> specs;
    uint64_t total = 0;
    for (const auto & t : h.tensors) {
        specs.push_back({t.name, t.dtype, t.shape});
        total += t.end - t.begin;
    }
    std::vector<size_t> order;
    std::vector<uint64_t> offsets;
    std::string header;
    try {
        header = ggq::st_build_header(specs, h.has_metadata ? &h.metadata : nullptr, &order, &offsets);
    } catch (const ggq::error &) {
        return;  // e.g. a header that grows past the limit once re-serialised
    }
    check(header.size() % 8 == 0);
    std::vector<uint8_t> image(8 + header.size() + total, 0);
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) image[i] = (uint8_t)(n >> (8 * i));
    std::memcpy(image.data() + 8, header.data(), header.size());
    const ggq::st_header h2 = ggq::parse_safetensors(image.data(), image.size());  // must not throw
    check(h2.tensors.size() == h.tensors.size());
    check(h2.metadata == h.metadata);
    std::map<std::string, std::tuple<ggq::st_dtype, std::vector<uint64_t>, uint64_t>> a, b;
    for (const auto & t : h.tensors) a[t.name] = {t.dtype, t.shape, t.end - t.begin};
    for (const auto & t : h2.tensors) b[t.name] = {t.dtype, t.shape, t.end - t.begin};
    check(a == b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    ggq::st_header h;
    try {
        h = ggq::parse_safetensors(data, size);
    } catch (const ggq::error & e) {
        check(e.kind() == ggq::error_kind::safetensors);
        return 0;
    }
    // invariants of an accepted file
    uint64_t start = 0;
    for (const auto & t : h.tensors) {
        check(t.begin == start && t.end >= t.begin);
        start = t.end;
        check(ggq::st_tensor_nbytes(t.dtype, t.shape, t.name) == t.end - t.begin);
    }
    check(h.data_start + start == size);
    // touch every tensor byte through the float conversion (bounded: the input is small)
    for (const auto & t : h.tensors) {
        const size_t bits = ggq::st_dtype_bits(t.dtype);
        if (bits < 8) continue;
        const size_t n = (size_t)(t.end - t.begin) * 8 / bits;
        std::vector<float> out(n);
        try {
            ggq::st_to_float32(t.dtype, data + h.data_start + t.begin, out.data(), n);
        } catch (const ggq::error & e) {
            check(e.kind() == ggq::error_kind::type && t.dtype == ggq::st_dtype::C64);  // complex: not convertible
        }
    }
    round_trip(h);
    return 0;
}
