#include "file-util.h"

#include "ggq-error.h"
#include "io/json.h"

#include <atomic>
#include <cerrno>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <algorithm>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ggq {

namespace {

[[noreturn]] void fail_os(const char * fn, const std::string & what, const std::string & path, int err) {
    fail(error_kind::io, fn, what + " " + quote_untrusted(path, 4096) + ": " + std::strerror(err));
}

constexpr size_t k_write_buffer = size_t(4) << 20;

}  // namespace

std::string quote_untrusted(std::string_view s, size_t max_bytes) {
    static const char hex[] = "0123456789abcdef";
    std::string out = "'";
    size_t i = 0;
    while (i < s.size()) {
        if (i >= max_bytes) {
            out += "...";
            break;
        }
        // the length of the UTF-8 character starting here (0 when s[i] starts none)
        const size_t len = std::min<size_t>(4, s.size() - i);
        size_t ok = 0;
        for (size_t k = 1; k <= len && ok == 0; ++k) {
            if (utf8_invalid_offset(s.substr(i, k)) == k) ok = k;
        }
        const auto c = (unsigned char)s[i];
        if (ok > 1 || (ok == 1 && c >= 0x20 && c != 0x7f)) {
            out.append(s.substr(i, ok));
            i += ok;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
            i += 1;
        }
    }
    out += '\'';
    return out;
}

void check_path(const std::string & path, const char * fn) {
    if (path.find('\0') != std::string::npos) {
        fail(error_kind::io, fn, "path " + quote_untrusted(path, 4096) + " contains an embedded NUL byte");
    }
}

mapped_file::mapped_file(const std::string & path) : path_(path) {
    check_path(path, "open");
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        fail_os("open", "cannot open", path, errno);
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        fail_os("open", "cannot stat", path, err);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(error_kind::io, "open", quote_untrusted(path, 4096) + " is not a regular file");
    }
    size_ = (size_t)st.st_size;
    if (size_ > 0) {
        void * p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            fail_os("open", "cannot map", path, err);
        }
        data_ = static_cast<const uint8_t *>(p);
    }
    ::close(fd);  // the mapping stays valid
}

mapped_file::~mapped_file() {
    if (data_ != nullptr) {
        ::munmap(const_cast<uint8_t *>(data_), size_);
    }
}

output_map::~output_map() { ::munmap(data_, size_); }

void prefault_for_write(void * p, size_t n) {
#if defined(MADV_POPULATE_WRITE)
    static const uintptr_t page = (uintptr_t)::sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)p + page - 1) / page * page;
    const uintptr_t hi = ((uintptr_t)p + n) / page * page;
    if (hi > lo) ::madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

atomic_file_writer::atomic_file_writer(const std::string & path) : path_(path) {
    check_path(path, "write");
    static std::atomic<unsigned> counter{0};
    tmp_path_ = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    fd_ = ::open(tmp_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);  // RDWR: map() maps it shared
    if (fd_ < 0) {
        fail_os("write", "cannot create a temporary file for", path, errno);
    }
    buf_.reserve(k_write_buffer);
}

atomic_file_writer::~atomic_file_writer() { abort(); }

void atomic_file_writer::write_all(const char * p, size_t len) {
    size_t done = 0;
    while (done < len) {
        const ssize_t n = ::write(fd_, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_os("write", "cannot write", path_, errno);
        }
        done += (size_t)n;
    }
}

void atomic_file_writer::flush() {
    write_all(buf_.data(), buf_.size());
    buf_.clear();
}

void atomic_file_writer::check_room(size_t n) const {
    if (fd_ < 0) {
        fail(error_kind::io, "write", quote_untrusted(path_, 4096) + " is already closed");
    }
    if (map_ && n > map_->size() - offset_) {
        fail(error_kind::io, "write", quote_untrusted(path_, 4096) + ": " + std::to_string(n) + " more bytes at offset " +
                                          std::to_string(offset_) + " pass the preallocated size " + std::to_string(map_->size()));
    }
}

void atomic_file_writer::write(const void * data, size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    check_room(n);
    const char * p = static_cast<const char *>(data);
    if (map_) {
        uint8_t * dst = map_->data() + offset_;
        if (n > 0 && static_cast<const void *>(dst) != data) std::memcpy(dst, p, n);
        offset_ += n;
        return;
    }
    if (buf_.size() + n > k_write_buffer) {
        flush();
        if (n >= k_write_buffer) {  // large payloads go straight to the file, uncopied
            write_all(p, n);
            offset_ += n;
            return;
        }
    }
    buf_.append(p, n);
    offset_ += n;
}

void atomic_file_writer::write_zeros(size_t n) {
    static const char zeros[256] = {};
    while (n > 0) {
        const size_t k = n < sizeof zeros ? n : sizeof zeros;
        write(zeros, k);
        n -= k;
    }
}

const std::shared_ptr<output_map> & atomic_file_writer::map(uint64_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    check_room(0);
    if (map_tried_) return map_;
    map_tried_ = true;
    if (size <= offset_) return map_;  // nothing left to produce in place (offset_ counts the buffered bytes)
    flush();
#if defined(__linux__)
    // Preallocated blocks are what make writing through the mapping safe: a store into a page the
    // file system cannot back (disk full) would kill the process with SIGBUS instead of failing.
    if (::fallocate(fd_, 0, 0, (off_t)size) != 0) {
        const int err = errno;
        if (err == EOPNOTSUPP || err == ENOSYS) return map_;
        fail_os("write", "cannot preallocate " + std::to_string(size) + " bytes for", path_, err);
    }
    void * p = ::mmap(nullptr, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {  // e.g. a file system without shared writable mappings: back to write()
        if (::ftruncate(fd_, (off_t)offset_) != 0) fail_os("write", "cannot truncate", path_, errno);
        return map_;
    }
    map_ = std::make_shared<output_map>(static_cast<uint8_t *>(p), (size_t)size);
    released_ = 0;
#else
    (void)size;
#endif
    return map_;
}

void atomic_file_writer::release(uint64_t lo, uint64_t hi) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!map_) return;
    static const uint64_t page = (uint64_t)::sysconf(_SC_PAGESIZE);
    lo = (lo + page - 1) / page * page;
    hi = std::min<uint64_t>(hi, map_->size()) / page * page;
    if (lo <= released_) {  // what follows the pages already dropped (a writer going in order): one call each
        lo = released_;
        released_ = std::max(released_, hi);
    }
    if (hi > lo) {
        // dirty pages of a shared mapping stay in the page cache: this only unmaps them (keeps RSS flat);
        // a later store into one of them maps it again
        ::madvise(map_->data() + lo, (size_t)(hi - lo), MADV_DONTNEED);
    }
}

void atomic_file_writer::commit() {
    std::lock_guard<std::mutex> lock(mu_);
    check_room(0);
    if (map_ && offset_ != map_->size()) {
        fail(error_kind::io, "write", quote_untrusted(path_, 4096) + ": only " + std::to_string(offset_) + " of the " +
                                          std::to_string(map_->size()) + " preallocated bytes were written");
    }
    map_.reset();  // unmapped here unless a caller still holds a view
    flush();
    if (::close(fd_) != 0) {
        fd_ = -1;
        fail_os("write", "cannot close", path_, errno);
    }
    fd_ = -1;
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp_path_.c_str());
        fail_os("write", "cannot rename the finished file onto", path_, err);
    }
    tmp_path_.clear();
}

void atomic_file_writer::abort() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.reset();
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    if (!tmp_path_.empty()) {
        ::unlink(tmp_path_.c_str());
        tmp_path_.clear();
    }
}

}  // namespace ggq
