#include "io/safetensors.h"

#include "ggq-error.h"
#include "ggq-fp16.h"
#include "io/json.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

namespace ggq {

namespace {

constexpr const char * k_read = "safetensors_read";
constexpr const char * k_write = "safetensors_write";

struct dtype_row {
    const char * name;
    uint8_t bits;
};

// Indexed by st_dtype (the reference enum order).
constexpr dtype_row k_dtypes[] = {
    {"BOOL", 8},         {"F4", 4},           {"F6_E2M3", 6},      {"F6_E3M2", 6},  {"U8", 8},   {"I8", 8},
    {"F8_E5M2", 8},      {"F8_E4M3", 8},      {"F8_E8M0", 8},      {"F8_E4M3FNUZ", 8},           {"F8_E5M2FNUZ", 8},
    {"I16", 16},         {"U16", 16},         {"F16", 16},         {"BF16", 16},    {"I32", 32}, {"U32", 32},
    {"F32", 32},         {"C64", 64},         {"F64", 64},         {"I64", 64},     {"U64", 64},
};
static_assert(sizeof(k_dtypes) / sizeof(k_dtypes[0]) == (size_t)st_dtype::COUNT, "one row per dtype");

// Names in error messages: a hostile name may be huge.
std::string quoted(std::string_view name) { return "'" + utf8_clip(name) + "'"; }

void parse_tensor_info(json_reader & r, st_tensor_info & t) {
    std::string key;
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (r.peek() != json_reader::token::object) r.fail_at("tensor " + quoted(t.name) + ": info must be an object");
    r.begin_object();
    while (r.next_member(key)) {
        if (key == "dtype") {
            const std::string d = r.read_string();
            if (!st_dtype_from_name(d, &t.dtype)) {
                fail(error_kind::safetensors, k_read, "tensor " + quoted(t.name) + ": unknown dtype " + quoted(d));
            }
            have_dtype = true;
        } else if (key == "shape") {
            r.begin_array();
            while (r.next_element()) t.shape.push_back(r.read_u64());
            have_shape = true;
        } else if (key == "data_offsets") {
            r.begin_array();
            uint64_t v[2];
            int n = 0;
            while (r.next_element()) {
                if (n == 2) r.fail_at("tensor " + quoted(t.name) + ": data_offsets must have exactly 2 elements");
                v[n++] = r.read_u64();
            }
            if (n != 2) r.fail_at("tensor " + quoted(t.name) + ": data_offsets must have exactly 2 elements");
            t.begin = v[0];
            t.end = v[1];
            have_offsets = true;
        } else {
            r.skip_value();  // unknown fields are ignored, as serde does by default
        }
    }
    if (!have_dtype || !have_shape || !have_offsets) {
        fail(error_kind::safetensors, k_read,
             "tensor " + quoted(t.name) + ": missing field '" + (!have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets") + "'");
    }
}

}  // namespace

const char * st_dtype_name(st_dtype t) { return (size_t)t < (size_t)st_dtype::COUNT ? k_dtypes[(size_t)t].name : "?"; }

size_t st_dtype_bits(st_dtype t) { return (size_t)t < (size_t)st_dtype::COUNT ? k_dtypes[(size_t)t].bits : 0; }

bool st_dtype_from_name(std::string_view name, st_dtype * out) {
    for (size_t i = 0; i < (size_t)st_dtype::COUNT; ++i) {
        if (name == k_dtypes[i].name) {
            *out = (st_dtype)i;
            return true;
        }
    }
    return false;
}

uint64_t st_tensor_nbytes(st_dtype dtype, const std::vector<uint64_t> & shape, const std::string & name, const char * fn) {
    uint64_t n = 1;
    for (const uint64_t d : shape) {
        if (!checked_mul(n, d, &n)) {
            fail(error_kind::safetensors, fn, "tensor " + quoted(name) + ": validation overflow: the shape's element count does not fit 64 bits");
        }
    }
    uint64_t bits;
    if (!checked_mul(n, st_dtype_bits(dtype), &bits)) {
        fail(error_kind::safetensors, fn, "tensor " + quoted(name) + ": validation overflow: the bit count does not fit 64 bits");
    }
    if (bits % 8 != 0) {
        fail(error_kind::safetensors, fn, "tensor " + quoted(name) + ": misaligned slice: " + std::to_string(n) + " elements of " +
                                                  st_dtype_name(dtype) + " do not end at a byte boundary");
    }
    return bits / 8;
}

st_header parse_safetensors(const uint8_t * data, size_t size) {
    if (size < 8) {
        fail(error_kind::safetensors, k_read, "header too small: the file has " + std::to_string(size) +
                                                  " bytes, fewer than the 8-byte header length");
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    if (n > k_safetensors_max_header) {
        fail(error_kind::safetensors, k_read, "header too large: header length " + std::to_string(n) + " exceeds the limit of " +
                                                  std::to_string(k_safetensors_max_header) + " bytes");
    }
    if (n > size - 8) {
        fail(error_kind::safetensors, k_read, "invalid header length: header length " + std::to_string(n) +
                                                  " runs past the end of the file (" + std::to_string(size) + " bytes)");
    }
    const std::string_view text(reinterpret_cast<const char *>(data) + 8, (size_t)n);
    const size_t bad = utf8_invalid_offset(text);
    if (bad != text.size()) {
        fail(error_kind::safetensors, k_read, "invalid header: not valid UTF-8 at header byte " + std::to_string(bad));
    }

    st_header h;
    h.data_start = 8 + n;
    // 127 nested containers at most, as serde_json (the reference's parser) allows
    json_reader r(text, error_kind::safetensors, k_read, 127);
    if (r.peek() != json_reader::token::object) r.fail_at("the header must be a JSON object");
    r.begin_object();
    std::string key;
    while (r.next_member(key)) {
        if (key == "__metadata__") {
            if (r.peek() == json_reader::token::null) {
                r.read_null();
                continue;
            }
            if (r.peek() != json_reader::token::object) r.fail_at("__metadata__ must be an object of strings");
            h.has_metadata = true;
            r.begin_object();
            std::string mk;
            while (r.next_member(mk)) {
                if (r.peek() != json_reader::token::string) r.fail_at("__metadata__ value of " + quoted(mk) + " is not a string");
                h.metadata.emplace_back(mk, r.read_string());
            }
            continue;
        }
        st_tensor_info t;
        t.name = key;
        parse_tensor_info(r, t);
        h.tensors.push_back(std::move(t));
    }
    r.finish();

    std::sort(h.tensors.begin(), h.tensors.end(), [](const st_tensor_info & a, const st_tensor_info & b) {
        if (a.begin != b.begin) return a.begin < b.begin;
        if (a.end != b.end) return a.end < b.end;
        return a.name < b.name;
    });
    uint64_t start = 0;
    for (const st_tensor_info & t : h.tensors) {
        if (t.begin != start || t.end < t.begin) {
            std::string why;
            if (t.end < t.begin) {
                why = "data_offsets end " + std::to_string(t.end) + " is before begin " + std::to_string(t.begin);
            } else if (t.begin > start) {
                why = "hole: data begins at " + std::to_string(t.begin) + " but the previous tensor ends at " + std::to_string(start);
            } else {
                why = "overlap: data begins at " + std::to_string(t.begin) + " inside the previous tensor, which ends at " +
                      std::to_string(start);
            }
            fail(error_kind::safetensors, k_read, "invalid offset of tensor " + quoted(t.name) + ": " + why);
        }
        start = t.end;
        const uint64_t nbytes = st_tensor_nbytes(t.dtype, t.shape, t.name);
        if (t.end - t.begin != nbytes) {
            fail(error_kind::safetensors, k_read, "invalid tensor info of " + quoted(t.name) + ": data_offsets span " +
                                                      std::to_string(t.end - t.begin) + " bytes but dtype " + st_dtype_name(t.dtype) +
                                                      " and the shape need " + std::to_string(nbytes));
        }
    }
    uint64_t expected = 0;
    const bool fits = checked_add(h.data_start, start, &expected);
    if (!fits || expected != size) {
        fail(error_kind::safetensors, k_read, "metadata incomplete buffer: header and tensors need " +
                                                  (fits ? std::to_string(expected) : std::string("more than 2^64")) +
                                                  " bytes but the file has " + std::to_string(size) +
                                                  (fits && size > expected ? " (trailing bytes)" : " (truncated)"));
    }
    return h;
}

safetensors_file::safetensors_file(const std::string & path) : file_(path) {
    header_ = parse_safetensors(file_.data(), file_.size());
    index_.reserve(header_.tensors.size());
    for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

const st_tensor_info * safetensors_file::find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const st_tensor_info & safetensors_file::at(std::string_view name) const {
    const st_tensor_info * t = find(name);
    if (t == nullptr) {
        fail(error_kind::value, "safetensors_get", "no tensor named " + quoted(name) + " in '" + path() + "'");
    }
    return *t;
}

// ---- float conversion

namespace {

// An 8-bit float with `ebits` exponent bits, bias, and its NaN/Inf convention, decoded exactly.
enum class f8_kind { fn, ieee, fnuz };

float decode_f8(uint8_t v, int ebits, int bias, f8_kind kind) {
    const int mbits = 7 - ebits;
    const bool neg = (v & 0x80) != 0;
    const int e = (v >> mbits) & ((1 << ebits) - 1);
    const int m = v & ((1 << mbits) - 1);
    if (kind == f8_kind::fnuz && v == 0x80) return std::numeric_limits<float>::quiet_NaN();
    if (kind == f8_kind::fn && e == (1 << ebits) - 1 && m == (1 << mbits) - 1) return std::numeric_limits<float>::quiet_NaN();
    if (kind == f8_kind::ieee && e == (1 << ebits) - 1) {
        if (m != 0) return std::numeric_limits<float>::quiet_NaN();
        return neg ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    }
    float mag;
    if (e == 0) {
        mag = std::ldexp((float)m, 1 - bias - mbits);
    } else {
        mag = std::ldexp((float)((1 << mbits) | m), e - bias - mbits);
    }
    return neg ? -mag : mag;
}

struct f8_tables {
    float t[5][256];
    f8_tables() {
        for (int v = 0; v < 256; ++v) {
            t[0][v] = decode_f8((uint8_t)v, 5, 15, f8_kind::ieee);  // F8_E5M2
            t[1][v] = decode_f8((uint8_t)v, 4, 7, f8_kind::fn);     // F8_E4M3 (fn: no Inf, S.1111.111 NaN)
            t[2][v] = v == 255 ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, v - 127);  // F8_E8M0
            t[3][v] = decode_f8((uint8_t)v, 4, 8, f8_kind::fnuz);   // F8_E4M3FNUZ
            t[4][v] = decode_f8((uint8_t)v, 5, 16, f8_kind::fnuz);  // F8_E5M2FNUZ
        }
    }
};

template <typename T>
void cast_all(const void * src, float * dst, size_t n) {
    const auto * s = static_cast<const uint8_t *>(src);
    for (size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, s + i * sizeof(T), sizeof(T));  // unaligned data is allowed by the format
        dst[i] = (float)v;
    }
}

}  // namespace

void st_to_float32(st_dtype dtype, const void * src, float * dst, size_t n) {
    static const f8_tables tables;
    const auto * s = static_cast<const uint8_t *>(src);
    auto table = [&](int k) {
        for (size_t i = 0; i < n; ++i) dst[i] = tables.t[k][s[i]];
    };
    switch (dtype) {
        case st_dtype::F8_E5M2: return table(0);
        case st_dtype::F8_E4M3: return table(1);
        case st_dtype::F8_E8M0: return table(2);
        case st_dtype::F8_E4M3FNUZ: return table(3);
        case st_dtype::F8_E5M2FNUZ: return table(4);
        case st_dtype::F16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, s + 2 * i, 2);
                dst[i] = fp16_to_fp32(h);
            }
            return;
        case st_dtype::BF16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, s + 2 * i, 2);
                dst[i] = bf16_to_fp32(h);
            }
            return;
        case st_dtype::F32:
            std::memcpy(dst, src, n * 4);
            return;
        case st_dtype::F64: return cast_all<double>(src, dst, n);
        case st_dtype::BOOL:
            for (size_t i = 0; i < n; ++i) dst[i] = s[i] != 0 ? 1.0f : 0.0f;
            return;
        case st_dtype::U8: return cast_all<uint8_t>(src, dst, n);
        case st_dtype::I8: return cast_all<int8_t>(src, dst, n);
        case st_dtype::I16: return cast_all<int16_t>(src, dst, n);
        case st_dtype::U16: return cast_all<uint16_t>(src, dst, n);
        case st_dtype::I32: return cast_all<int32_t>(src, dst, n);
        case st_dtype::U32: return cast_all<uint32_t>(src, dst, n);
        case st_dtype::I64: return cast_all<int64_t>(src, dst, n);
        case st_dtype::U64: return cast_all<uint64_t>(src, dst, n);
        default: break;
    }
    fail(error_kind::type, "safetensors_get_float32", std::string("cannot convert dtype ") + st_dtype_name(dtype) + " to float32");
}

// ---- writer

std::string st_build_header(const std::vector<st_tensor_spec> & specs, const std::vector<std::pair<std::string, std::string>> * metadata,
                            std::vector<size_t> * order, std::vector<uint64_t> * offsets) {
    std::vector<size_t> idx(specs.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        if (specs[a].dtype != specs[b].dtype) return specs[a].dtype > specs[b].dtype;
        return specs[a].name < specs[b].name;
    });
    for (size_t k = 1; k < idx.size(); ++k) {
        if (specs[idx[k]].name == specs[idx[k - 1]].name) {
            fail(error_kind::safetensors, k_write, "duplicate tensor name " + quoted(specs[idx[k]].name));
        }
    }
    // equal names sort together only within one dtype: check across dtypes as well
    {
        std::unordered_set<std::string_view> seen;
        for (const st_tensor_spec & s : specs) {
            if (s.name == "__metadata__") fail(error_kind::safetensors, k_write, "a tensor cannot be named '__metadata__'");
            if (!seen.insert(s.name).second) fail(error_kind::safetensors, k_write, "duplicate tensor name " + quoted(s.name));
            if ((size_t)s.dtype >= (size_t)st_dtype::COUNT) fail(error_kind::safetensors, k_write, "bad dtype for " + quoted(s.name));
        }
    }
    std::string h = "{";
    if (metadata != nullptr) {
        h += "\"__metadata__\":{";
        for (size_t i = 0; i < metadata->size(); ++i) {
            if (i > 0) h += ',';
            json_append_string(h, (*metadata)[i].first);
            h += ':';
            json_append_string(h, (*metadata)[i].second);
        }
        h += '}';
    }
    offsets->assign(specs.size(), 0);
    uint64_t off = 0;
    for (size_t k = 0; k < idx.size(); ++k) {
        const st_tensor_spec & s = specs[idx[k]];
        const uint64_t nbytes = st_tensor_nbytes(s.dtype, s.shape, s.name, k_write);
        if (k > 0 || metadata != nullptr) h += ',';
        json_append_string(h, s.name);
        h += ":{\"dtype\":\"";
        h += st_dtype_name(s.dtype);
        h += "\",\"shape\":[";
        for (size_t d = 0; d < s.shape.size(); ++d) {
            if (d > 0) h += ',';
            h += std::to_string(s.shape[d]);
        }
        (*offsets)[idx[k]] = off;
        h += "],\"data_offsets\":[" + std::to_string(off) + ",";
        if (!checked_add(off, nbytes, &off)) fail(error_kind::safetensors, k_write, "total data size does not fit 64 bits");
        h += std::to_string(off) + "]}";
        if (h.size() > k_safetensors_max_header) break;
    }
    h += '}';
    h.append((8 - h.size() % 8) % 8, ' ');
    if (h.size() > k_safetensors_max_header) {
        fail(error_kind::safetensors, k_write, "header too large: over the limit of " + std::to_string(k_safetensors_max_header) + " bytes");
    }
    *order = std::move(idx);
    return h;
}

safetensors_writer::safetensors_writer(const std::string & path, std::vector<st_tensor_spec> specs,
                                       const std::vector<std::pair<std::string, std::string>> * metadata)
    : specs_(std::move(specs)), out_([&]() -> const std::string & {
          // build (and so validate) the header before any file is created
          header_ = st_build_header(specs_, metadata, &order_, &offsets_);
          return path;
      }()) {
    nbytes_.resize(specs_.size());
    for (size_t i = 0; i < specs_.size(); ++i) {
        nbytes_[i] = st_tensor_nbytes(specs_[i].dtype, specs_[i].shape, specs_[i].name, k_write);
        data_size_ = std::max(data_size_, offsets_[i] + nbytes_[i]);
    }
    data_start_ = 8 + header_.size();
    uint8_t len[8];
    uint64_t n = header_.size();
    for (int i = 0; i < 8; ++i) {
        len[i] = (uint8_t)(n & 0xFF);
        n >>= 8;
    }
    out_.write(len, 8);
    out_.write(header_.data(), header_.size());
    header_.clear();
    header_.shrink_to_fit();
}

void safetensors_writer::write_tensor(std::string_view name, const void * data, size_t nbytes) {
    if (next_ >= order_.size()) {
        fail(error_kind::safetensors, k_write, "all tensors are written; unexpected " + quoted(name));
    }
    const size_t i = order_[next_];
    if (name != specs_[i].name) {
        fail(error_kind::safetensors, k_write, "expected tensor " + quoted(specs_[i].name) + " next (reference layout order), got " + quoted(name));
    }
    if (nbytes != nbytes_[i]) {
        fail(error_kind::safetensors, k_write, "tensor " + quoted(name) + " has " + std::to_string(nbytes) + " bytes, expected " +
                                             std::to_string(nbytes_[i]));
    }
    out_.write(data, nbytes);  // copies nothing where `data` is the tensor's place in the mapping
    out_.release(0, out_.offset());  // everything before is in place: tensors are written in order()
    ++next_;
}

const std::shared_ptr<output_map> & safetensors_writer::map_data() { return out_.map(data_start_ + data_size_); }

uint8_t * safetensors_writer::tensor_data(size_t spec_index) {
    if (spec_index >= specs_.size()) {
        fail(error_kind::safetensors, k_write, "tensor index " + std::to_string(spec_index) + " is past the " +
                                             std::to_string(specs_.size()) + " tensors declared");
    }
    const auto & m = map_data();
    return m ? m->data() + data_start_ + offsets_[spec_index] : nullptr;
}

void safetensors_writer::release_tensor(size_t spec_index) {
    if (spec_index >= specs_.size()) return;
    const uint64_t lo = data_start_ + offsets_[spec_index];
    out_.release(lo, lo + nbytes_[spec_index]);
}

void safetensors_writer::commit() {
    if (next_ != order_.size()) {
        fail(error_kind::safetensors, k_write, std::to_string(order_.size() - next_) + " tensor(s) not written, next is " +
                                             quoted(specs_[order_[next_]].name));
    }
    out_.commit();
}

}  // namespace ggq
