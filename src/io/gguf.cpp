#include "gguf.h"

#include "ggq-error.h"
#include "ggq-types.h"

#include <cstring>
#include <limits>
#include <unordered_set>

namespace ggq {

namespace {

constexpr size_t k_type_sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
constexpr const char * k_type_names[GGUF_TYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                                         "str", "arr", "u64", "i64", "f64"};

[[noreturn]] void bad(const std::string & msg) { fail(error_kind::gguf, "gguf_read", msg); }

uint64_t pad_to(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

// Bounds-checked little-endian reader over the file bytes.
class cursor {
public:
    cursor(const uint8_t * data, size_t size) : data_(data), size_(size) {}

    size_t pos() const { return pos_; }
    size_t left() const { return size_ - pos_; }

    const uint8_t * take(uint64_t n, const char * what) {
        if (n > left()) {
            bad(std::string(what) + " at offset " + std::to_string(pos_) + " needs " + std::to_string(n) +
                " bytes but the file has " + std::to_string(left()) + " left");
        }
        const uint8_t * p = data_ + pos_;
        pos_ += (size_t)n;
        return p;
    }

    template <typename T>
    T get(const char * what) {
        T v;
        std::memcpy(&v, take(sizeof v, what), sizeof v);
        return v;
    }

    std::string str(const char * what) {
        const uint64_t n = get<uint64_t>(what);
        if (n > k_gguf_max_string) {
            bad(std::string(what) + " at offset " + std::to_string(pos_ - 8) + " has length " + std::to_string(n) +
                ", over the limit of " + std::to_string(k_gguf_max_string));
        }
        const uint8_t * p = take(n, what);
        return std::string(reinterpret_cast<const char *>(p), (size_t)n);
    }

private:
    const uint8_t * data_;
    size_t size_;
    size_t pos_ = 0;
};

// The byte size of a tensor, by ggml's rule: every prefix product of the shape stays below 2^63
// (so a zero dimension makes any later ones legal: a zero-element tensor, but not earlier ones),
// and so does the byte count. False when the shape breaks the rule.
bool tensor_nbytes(const int64_t * ne, const type_traits & tt, uint64_t * nbytes) {
    uint64_t nelem = (uint64_t)ne[0];
    for (int d = 1; d < 4; ++d) {
        if (!checked_mul(nelem, (uint64_t)ne[d], &nelem) || nelem > (uint64_t)std::numeric_limits<int64_t>::max()) return false;
    }
    return checked_mul(nelem / (uint64_t)tt.blck_size, tt.type_size, nbytes);
}

void read_value(cursor & c, gguf_kv & kv) {
    const std::string what = "value of key " + quote_untrusted(kv.key);
    if (kv.type == GGUF_TYPE_STRING) {
        kv.strings.push_back(c.str(what.c_str()));
        return;
    }
    if (kv.type != GGUF_TYPE_ARRAY) {
        kv.offset = c.pos();
        c.take(gguf_type_size(kv.type), what.c_str());
        return;
    }
    kv.elem_type = c.get<int32_t>(what.c_str());
    if (kv.elem_type < 0 || kv.elem_type >= GGUF_TYPE_COUNT) {
        bad("key " + quote_untrusted(kv.key) + " has an array of invalid type " + std::to_string(kv.elem_type));
    }
    if (kv.elem_type == GGUF_TYPE_ARRAY) {
        bad("key " + quote_untrusted(kv.key) + " is an array of arrays, which ggml does not read");
    }
    const uint64_t n = c.get<uint64_t>(what.c_str());
    if (n > k_gguf_max_array) {
        bad("key " + quote_untrusted(kv.key) + " has " + std::to_string(n) + " array elements, over the limit of " + std::to_string(k_gguf_max_array));
    }
    kv.count = n;
    if (kv.elem_type == GGUF_TYPE_STRING) {
        if (n > c.left() / 8) {  // each element needs at least its 8-byte length
            bad("key " + quote_untrusted(kv.key) + " claims " + std::to_string(n) + " strings but only " + std::to_string(c.left()) + " bytes remain");
        }
        kv.strings.reserve((size_t)n);
        for (uint64_t i = 0; i < n; ++i) {
            kv.strings.push_back(c.str(what.c_str()));
        }
        return;
    }
    uint64_t bytes;
    if (!checked_mul(n, gguf_type_size(kv.elem_type), &bytes)) {
        bad("key " + quote_untrusted(kv.key) + " array size overflows");
    }
    kv.offset = c.pos();
    c.take(bytes, what.c_str());
}

}  // namespace

size_t gguf_type_size(int32_t type) { return type >= 0 && type < GGUF_TYPE_COUNT ? k_type_sizes[type] : 0; }

const char * gguf_type_name(int32_t type) { return type >= 0 && type < GGUF_TYPE_COUNT ? k_type_names[type] : "invalid"; }

gguf_file gguf_parse(const uint8_t * data, size_t size) {
    cursor c(data, size);
    gguf_file f;
    if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) {
        bad("not a GGUF file: bad magic (expected 'GGUF')");
    }
    c.take(4, "magic");
    const uint32_t version = c.get<uint32_t>("version");
    if ((version & 0xFFFFu) == 0 && version != 0) {
        bad("the file is byte-swapped (big-endian GGUF, version field " + std::to_string(version) +
            "); only little-endian files are supported");
    }
    if (version < 2 || version > 3) {
        bad("unsupported GGUF version " + std::to_string(version) + " (supported: 2 and 3)");
    }
    f.version = version;
    const int64_t n_tensors = c.get<int64_t>("tensor count");
    const int64_t n_kv = c.get<int64_t>("metadata count");
    // a KV takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes; a tensor info at
    // least 8 + 1 + 4 + 4 + 8
    if (n_tensors < 0 || (uint64_t)n_tensors > c.left() / 25) {
        bad("tensor count " + std::to_string(n_tensors) + " is negative or larger than the file can hold");
    }
    if (n_kv < 0 || (uint64_t)n_kv > c.left() / 14) {
        bad("metadata count " + std::to_string(n_kv) + " is negative or larger than the file can hold");
    }

    std::unordered_set<std::string> keys;
    f.kvs.reserve((size_t)n_kv);
    for (int64_t i = 0; i < n_kv; ++i) {
        gguf_kv kv;
        kv.key = c.str("metadata key");
        if (kv.key.empty()) {
            bad("metadata key " + std::to_string(i) + " is empty");
        }
        if (!keys.insert(kv.key).second) {
            bad("duplicate metadata key " + quote_untrusted(kv.key));
        }
        kv.type = c.get<int32_t>("value type");
        if (kv.type < 0 || kv.type >= GGUF_TYPE_COUNT) {
            bad("key " + quote_untrusted(kv.key) + " has invalid value type " + std::to_string(kv.type));
        }
        read_value(c, kv);
        if (kv.key == "general.alignment") {
            if (kv.type != GGUF_TYPE_UINT32) {
                bad(std::string("general.alignment must be u32, not ") + gguf_type_name(kv.type));
            }
            uint32_t a;
            std::memcpy(&a, data + kv.offset, 4);
            if (a == 0 || (a & (a - 1)) != 0 || a > k_gguf_max_alignment) {
                bad("general.alignment " + std::to_string(a) + " is not a power of two up to " + std::to_string(k_gguf_max_alignment));
            }
            f.alignment = a;
        }
        f.kvs.push_back(std::move(kv));
    }

    f.tensors.reserve((size_t)n_tensors);
    f.tensor_index.reserve((size_t)n_tensors);
    uint64_t expected_offset = 0;
    for (int64_t i = 0; i < n_tensors; ++i) {
        gguf_tensor_info t;
        t.name = c.str("tensor name");
        if (t.name.size() >= k_gguf_max_name) {
            bad("tensor name " + quote_untrusted(t.name, 80) + " is " + std::to_string(t.name.size()) + " bytes; ggml allows at most 63");
        }
        if (!f.tensor_index.emplace(t.name, f.tensors.size()).second) {
            bad("duplicate tensor name " + quote_untrusted(t.name));
        }
        t.n_dims = c.get<uint32_t>("tensor dimension count");
        if (t.n_dims > 4) {
            bad("tensor " + quote_untrusted(t.name) + " has " + std::to_string(t.n_dims) + " dimensions; at most 4 are allowed");
        }
        for (uint32_t d = 0; d < t.n_dims; ++d) {
            t.ne[d] = c.get<int64_t>("tensor shape");
            if (t.ne[d] < 0) {
                bad("tensor " + quote_untrusted(t.name) + " has negative dimension " + std::to_string(t.ne[d]));
            }
        }
        t.type = c.get<int32_t>("tensor type");
        if (!type_is_valid(t.type)) {
            bad("tensor " + quote_untrusted(t.name) + " has invalid or retired ggml type " + std::to_string(t.type));
        }
        const type_traits & tt = get_type_traits(t.type);
        if (t.ne[0] % tt.blck_size != 0) {
            bad("tensor " + quote_untrusted(t.name) + " row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + tt.name +
                " block size " + std::to_string(tt.blck_size));
        }
        uint64_t nbytes;
        if (!tensor_nbytes(t.ne, tt, &nbytes)) {
            bad("tensor " + quote_untrusted(t.name) + " has a shape whose element count or byte size overflows");
        }
        t.nbytes = nbytes;
        t.offset = c.get<uint64_t>("tensor offset");
        if (t.offset != expected_offset) {
            bad("tensor " + quote_untrusted(t.name) + " has offset " + std::to_string(t.offset) + ", expected " + std::to_string(expected_offset) +
                " (data must be packed in tensor-info order, each tensor padded to the alignment " + std::to_string(f.alignment) + ")");
        }
        uint64_t padded;
        if (!checked_add(nbytes, (f.alignment - nbytes % f.alignment) % f.alignment, &padded) ||
            !checked_add(expected_offset, padded, &expected_offset)) {
            bad("tensor " + quote_untrusted(t.name) + ": total data size overflows");
        }
        f.tensors.push_back(std::move(t));
    }

    if (f.tensors.empty()) {  // ggml pads only when there is tensor data to align
        f.data_start = c.pos();
        return f;
    }
    f.data_start = pad_to(c.pos(), f.alignment);
    const gguf_tensor_info & last = f.tensors.back();
    uint64_t end;
    if (f.data_start > size || !checked_add(f.data_start, last.offset + last.nbytes, &end) || end > size) {
        bad("tensor data is not within the file bounds: " + std::to_string(size) + " bytes, but the data of tensor " +
            quote_untrusted(last.name) + " ends past them");
    }
    return f;
}

gguf_file gguf_read(const std::string & path) {
    auto map = std::make_shared<mapped_file>(path);
    try {
        gguf_file f = gguf_parse(map->data(), map->size());
        f.map = std::move(map);
        return f;
    } catch (const error & e) {
        throw error(e.kind(), std::string(e.what()) + " (in " + quote_untrusted(path, 4096) + ")");
    }
}

// ===== writer

namespace {

void put(std::string & out, const void * p, size_t n) { out.append(static_cast<const char *>(p), n); }

template <typename T>
void put(std::string & out, T v) {
    put(out, &v, sizeof v);
}

void put_str(std::string & out, const std::string & s) {
    put<uint64_t>(out, s.size());
    put(out, s.data(), s.size());
}

[[noreturn]] void bad_write(const std::string & msg) { fail(error_kind::gguf, "gguf_write", msg); }

}  // namespace

gguf_writer::gguf_writer(const std::string & path, uint32_t alignment) : out_(path), alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > k_gguf_max_alignment) {
        bad_write("alignment " + std::to_string(alignment) + " is not a power of two up to " + std::to_string(k_gguf_max_alignment));
    }
}

void gguf_writer::add_kv(const std::string & key, int32_t type, int32_t elem_type, uint64_t count, const void * payload,
                         size_t payload_bytes, const std::vector<std::string> & strings) {
    if (header_written_) bad_write("metadata " + quote_untrusted(key) + " added after the header was written");
    if (key.empty()) bad_write("metadata keys must not be empty");
    if (keys_.count(key) != 0) bad_write("duplicate metadata key " + quote_untrusted(key));
    if (type < 0 || type >= GGUF_TYPE_COUNT) bad_write("key " + quote_untrusted(key) + ": invalid value type " + std::to_string(type));
    if (key == "general.alignment") {  // must agree with the layout this writer produces
        uint32_t a = 0;
        if (type != GGUF_TYPE_UINT32 || payload_bytes != 4 || (std::memcpy(&a, payload, 4), a != alignment_)) {
            bad_write("general.alignment must be a u32 equal to the writer's alignment " + std::to_string(alignment_));
        }
    }
    std::string rec;
    put_str(rec, key);
    put<int32_t>(rec, type);
    if (type == GGUF_TYPE_STRING) {
        if (strings.size() != 1) bad_write("key " + quote_untrusted(key) + ": a string value needs exactly one string");
        put_str(rec, strings[0]);
    } else if (type == GGUF_TYPE_ARRAY) {
        if (elem_type < 0 || elem_type >= GGUF_TYPE_COUNT || elem_type == GGUF_TYPE_ARRAY) {
            bad_write("key " + quote_untrusted(key) + ": invalid array element type " + std::to_string(elem_type) + " (nested arrays are not readable by ggml)");
        }
        put<int32_t>(rec, elem_type);
        put<uint64_t>(rec, count);
        if (elem_type == GGUF_TYPE_STRING) {
            if (strings.size() != count) bad_write("key " + quote_untrusted(key) + ": string count mismatch");
            for (const auto & s : strings) put_str(rec, s);
        } else {
            if (payload_bytes != count * gguf_type_size(elem_type)) bad_write("key " + quote_untrusted(key) + ": array payload size mismatch");
            put(rec, payload, payload_bytes);
        }
    } else {
        if (payload_bytes != gguf_type_size(type)) bad_write("key " + quote_untrusted(key) + ": scalar payload size mismatch");
        put(rec, payload, payload_bytes);
    }
    header_kv_ += rec;
    keys_.insert(key);
    ++n_kv_;
}

void gguf_writer::add_tensor_info(const std::string & name, uint32_t n_dims, const int64_t * ne, int32_t type) {
    if (header_written_) bad_write("tensor " + quote_untrusted(name) + " added after the header was written");
    if (name.empty() || name.size() >= k_gguf_max_name) {
        bad_write("tensor name " + quote_untrusted(name) + " must be 1 to 63 bytes (ggml's limit), it is " + std::to_string(name.size()));
    }
    if (names_.count(name) != 0) bad_write("duplicate tensor name " + quote_untrusted(name));
    if (n_dims > 4) bad_write("tensor " + quote_untrusted(name) + " has " + std::to_string(n_dims) + " dimensions; at most 4 are allowed");
    const type_traits & tt = checked_type_traits(type, "gguf_write");
    gguf_tensor_info t;
    t.name = name;
    t.n_dims = n_dims;
    t.type = type;
    for (uint32_t d = 0; d < n_dims; ++d) {
        if (ne[d] < 0) bad_write("tensor " + quote_untrusted(name) + " has a negative dimension");
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % tt.blck_size != 0) {
        bad_write("tensor " + quote_untrusted(name) + " row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + tt.name +
                  " block size " + std::to_string(tt.blck_size));
    }
    uint64_t nbytes;
    if (!tensor_nbytes(t.ne, tt, &nbytes)) bad_write("tensor " + quote_untrusted(name) + " has a shape whose element count or byte size overflows");
    t.nbytes = nbytes;
    t.offset = data_size_;
    data_size_ += pad_to(nbytes, alignment_);
    names_.insert(name);
    infos_.push_back(std::move(t));
}

void gguf_writer::write_header() {
    if (header_written_) return;
    std::string h;
    put(h, "GGUF", 4);
    put<uint32_t>(h, 3);
    put<int64_t>(h, (int64_t)infos_.size());
    put<int64_t>(h, (int64_t)n_kv_);
    h += header_kv_;
    for (const auto & t : infos_) {
        put_str(h, t.name);
        put<uint32_t>(h, t.n_dims);
        for (uint32_t d = 0; d < t.n_dims; ++d) put<int64_t>(h, t.ne[d]);
        put<int32_t>(h, t.type);
        put<uint64_t>(h, t.offset);
    }
    h.append((size_t)(pad_to(h.size(), alignment_) - h.size()), '\0');
    out_.write(h.data(), h.size());
    data_start_ = out_.offset();
    header_written_ = true;
}

const std::shared_ptr<output_map> & gguf_writer::map_data() {
    write_header();
    return out_.map(data_start_ + data_size_);
}

uint8_t * gguf_writer::tensor_data(size_t i) {
    if (i >= infos_.size()) bad_write("tensor index " + std::to_string(i) + " is past the " + std::to_string(infos_.size()) + " tensors declared");
    const auto & m = map_data();
    return m ? m->data() + data_start_ + infos_[i].offset : nullptr;
}

void gguf_writer::write_tensor_data(const void * data, size_t nbytes) {
    write_header();
    if (next_tensor_ >= infos_.size()) bad_write("more tensor data written than tensors declared");
    const gguf_tensor_info & t = infos_[next_tensor_];
    if (nbytes != t.nbytes) {
        bad_write("tensor " + quote_untrusted(t.name) + " needs " + std::to_string(t.nbytes) + " bytes of data, got " + std::to_string(nbytes));
    }
    out_.write(data, nbytes);  // copies nothing where `data` is the tensor's place in the mapping
    out_.write_zeros((size_t)(pad_to(nbytes, alignment_) - nbytes));
    out_.release(0, out_.offset());
    ++next_tensor_;
}

void gguf_writer::commit() {
    write_header();
    if (next_tensor_ != infos_.size()) {
        bad_write("only " + std::to_string(next_tensor_) + " of " + std::to_string(infos_.size()) + " tensors were written; next missing: " +
                  quote_untrusted(infos_[next_tensor_].name));
    }
    out_.commit();
}

void gguf_writer::abort() { out_.abort(); }

}  // namespace ggq
