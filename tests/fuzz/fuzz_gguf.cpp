// libFuzzer harness for the GGUF reader (src/io/gguf.cpp). Any input must either parse or throw
// ggq::error; crashes, sanitizer reports, leaks and timeouts are findings. A parsed file must also
// satisfy the invariants the rest of ggquant relies on: every tensor's data lies inside the input.
// Build and run: tests/fuzz/build_fuzz_gguf.sh
#include "ggq-error.h"
#include "io/gguf.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    try {
        const ggq::gguf_file f = ggq::gguf_parse(data, size);
        for (const auto & t : f.tensors) {
            if (f.data_start + t.offset + t.nbytes > size || t.name.size() >= 64 || t.n_dims > 4) std::abort();
        }
        for (const auto & kv : f.kvs) {
            if (kv.type != ggq::GGUF_TYPE_STRING && kv.elem_type != ggq::GGUF_TYPE_STRING && kv.offset > size) std::abort();
        }
    } catch (const ggq::error &) {
    }
    return 0;
}
