// Files for the readers and writers: a read-only memory map, and an output file that appears under
// its final name only when complete (temporary file + rename), so no partial output is ever left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ggq {

// Overflow-checked arithmetic for sizes read from untrusted files: false on overflow.
inline bool checked_add(uint64_t a, uint64_t b, uint64_t * out) { return !__builtin_add_overflow(a, b, out); }
inline bool checked_mul(uint64_t a, uint64_t b, uint64_t * out) { return !__builtin_mul_overflow(a, b, out); }

// A name or path from an untrusted source, quoted for an error message: at most max_bytes of it,
// cut at a character boundary ("..." appended), with bytes that are not valid UTF-8 and control
// characters written as \xNN, so every message is valid UTF-8 whatever the input.
std::string quote_untrusted(std::string_view s, size_t max_bytes = 200);

// Fails (error_kind::io, naming `fn`) when a path holds an embedded NUL: the OS would silently
// open the part before it.
void check_path(const std::string & path, const char * fn);

class mapped_file {
public:
    explicit mapped_file(const std::string & path);  // throws error_kind::io naming the path and the OS reason
    ~mapped_file();
    mapped_file(const mapped_file &) = delete;
    mapped_file & operator=(const mapped_file &) = delete;

    const uint8_t * data() const { return data_; }
    size_t size() const { return size_; }
    const std::string & path() const { return path_; }

private:
    std::string path_;
    const uint8_t * data_ = nullptr;
    size_t size_ = 0;
};

class atomic_file_writer {
public:
    // Creates a temporary file beside `path`. Nothing exists under `path` until commit().
    explicit atomic_file_writer(const std::string & path);
    ~atomic_file_writer();  // without commit(): closes and deletes the temporary file
    atomic_file_writer(const atomic_file_writer &) = delete;
    atomic_file_writer & operator=(const atomic_file_writer &) = delete;

    void write(const void * data, size_t n);  // buffered; throws error_kind::io
    void write_zeros(size_t n);
    uint64_t offset() const { return offset_; }  // bytes written so far
    void commit();                               // flush, close, rename onto `path`
    void abort();                                // delete the temporary file now
    const std::string & path() const { return path_; }

private:
    void flush();
    void write_all(const char * p, size_t n);

    std::string path_;
    std::string tmp_path_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    std::string buf_;
};

}  // namespace ggq
