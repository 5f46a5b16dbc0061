// The one error type of the C++ core. Messages start with "[function]"; the kind lets the binding
// raise the matching ggquant exception subclass (all of them ValueError).
#pragma once

#include <stdexcept>
#include <string>

namespace ggq {

enum class error_kind {
    value,         // bad argument
    shape,         // shape or size not compatible with a type
    nonfinite,     // NaN or Inf in the input
    type,          // unknown, retired or unsupported ggml type
    gguf,          // malformed GGUF file
    safetensors,   // malformed safetensors file
    io,            // the operating system refused a file operation
};

class error : public std::invalid_argument {
public:
    error(error_kind kind, const std::string & msg) : std::invalid_argument(msg), kind_(kind) {}
    error_kind kind() const noexcept { return kind_; }

private:
    error_kind kind_;
};

// Throws ggq::error with "[fn] msg".
[[noreturn]] inline void fail(error_kind kind, const char * fn, const std::string & msg) {
    throw error(kind, std::string("[") + fn + "] " + msg);
}

}  // namespace ggq
