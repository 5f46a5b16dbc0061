// libFuzzer harness for the strict JSON reader (src/io/json.cpp) on arbitrary text: walks any
// document with skip_value, and re-reads strings and integers through the typed calls. Any input
// must either be accepted or throw ggq::error. Build: tests/fuzz/build_fuzz_safetensors.sh
#include "ggq-error.h"
#include "io/json.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

std::string_view g_text;

std::string_view text_of(const ggq::json_reader & r, size_t at) { return g_text.substr(at, r.position() - at); }

// Reads a value with the typed calls (strings decoded, integers as u64 where they are integers).
void walk(ggq::json_reader & r) {
    std::string key;
    switch (r.peek()) {
        case ggq::json_reader::token::object:
            r.begin_object();
            while (r.next_member(key)) walk(r);
            return;
        case ggq::json_reader::token::array:
            r.begin_array();
            while (r.next_element()) walk(r);
            return;
        case ggq::json_reader::token::string: {
            const std::string s = r.read_string();
            if (ggq::utf8_invalid_offset(s) != s.size()) std::abort();  // decoded strings stay valid UTF-8
            std::string quoted;
            ggq::json_append_string(quoted, s);  // and re-encode to the same string
            ggq::json_reader back(quoted, ggq::error_kind::value, "fuzz");
            if (back.read_string() != s) std::abort();
            return;
        }
        case ggq::json_reader::token::number: {
            r.peek();  // skip whitespace, so the number starts at position()
            const size_t at = r.position();
            const uint64_t v = r.read_u64();
            // an accepted integer is exactly its canonical decimal text
            if (std::to_string(v) != std::string(text_of(r, at))) std::abort();
            return;
        }
        default:
            r.skip_value();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    g_text = text;
    bool skipped = false, walked = false;
    try {
        ggq::json_reader r(text, ggq::error_kind::value, "fuzz", 64);
        r.skip_value();
        r.finish();
        skipped = true;
    } catch (const ggq::error &) {
    }
    try {
        ggq::json_reader r(text, ggq::error_kind::value, "fuzz", 64);
        walk(r);
        r.finish();
        walked = true;
    } catch (const ggq::error &) {
    }
    if (walked && !skipped) std::abort();  // the typed walk is stricter (u64 only), never laxer
    return 0;
}
