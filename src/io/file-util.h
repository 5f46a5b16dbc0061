// Files for the readers and writers: a read-only memory map, and an output file that appears under
// its final name only when complete (temporary file + rename), so no partial output is ever left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
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

// A writable shared mapping of an output file; unmapped when the last owner lets go (a caller may
// still hold views of it after the file is committed).
class output_map {
public:
    output_map(uint8_t * data, size_t size) : data_(data), size_(size) {}
    ~output_map();
    output_map(const output_map &) = delete;
    output_map & operator=(const output_map &) = delete;

    uint8_t * data() const { return data_; }
    size_t size() const { return size_; }

private:
    uint8_t * data_;
    size_t size_;
};

// Maps the whole pages inside [p, p + n) of a writable mapping now, ready for stores: a thread with
// nothing else to do can take the page faults (and the zeroing of new pages) off the ones that will
// write there. Best effort: without MADV_POPULATE_WRITE (Linux 5.14) it does nothing.
void prefault_for_write(void * p, size_t n);

class atomic_file_writer {
public:
    // Creates a temporary file beside `path`. Nothing exists under `path` until commit().
    explicit atomic_file_writer(const std::string & path);
    ~atomic_file_writer();  // without commit(): closes and deletes the temporary file
    atomic_file_writer(const atomic_file_writer &) = delete;
    atomic_file_writer & operator=(const atomic_file_writer &) = delete;

    void write(const void * data, size_t n);  // buffered, or copied into the mapping; throws error_kind::io
    void write_zeros(size_t n);
    uint64_t offset() const { return offset_; }  // bytes written so far
    void commit();                               // flush, close, rename onto `path`
    void abort();                                // delete the temporary file now
    const std::string & path() const { return path_; }

    // Preallocates the file to `size` bytes (what is written so far included) and maps it writable,
    // so that the rest can be produced in place: no copy through a buffer, page faults spread over
    // whichever threads write. Tried once: later calls return the same mapping. Null where the file
    // system cannot preallocate or nothing is left to write (the writer then goes on with write());
    // error_kind::io when the disk has no room. Mapped, the writer never writes past `size`, and
    // bytes placed through the mapping count once `write` (given their address, it copies nothing)
    // passes them.
    const std::shared_ptr<output_map> & map(uint64_t size);
    void release(uint64_t lo, uint64_t hi);  // done with bytes [lo, hi): drop the whole pages among them from this process

private:
    void flush();
    void write_all(const char * p, size_t n);
    void check_room(size_t n) const;

    std::string path_;
    std::string tmp_path_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    std::string buf_;
    std::shared_ptr<output_map> map_;
    bool map_tried_ = false;  // map() preallocates once; after a refusal the writer stays with write()
    uint64_t released_ = 0;   // the mapped pages below this were dropped
    // write/map/release/commit/abort may come from different threads (a converter's main thread asks
    // for the next tensor's place while its writer thread writes the last one)
    std::mutex mu_;
};

}  // namespace ggq
