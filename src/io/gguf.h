// GGUF v2/v3: a strict reader for untrusted files and a streaming writer that lays files out
// byte for byte as ggml's gguf writer does.
#pragma once

#include "file-util.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace ggq {

enum gguf_type : int32_t {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13,
};

// Named limits for untrusted files (ggml's C reader allows 1 GiB for both; real files need far less).
constexpr uint64_t k_gguf_max_string = uint64_t(256) << 20;
constexpr uint64_t k_gguf_max_array = uint64_t(1) << 30;
constexpr uint32_t k_gguf_max_alignment = uint32_t(1) << 24;
constexpr size_t k_gguf_max_name = 64;  // GGML_MAX_NAME, including the NUL: names are < 64 bytes
constexpr uint32_t k_gguf_default_alignment = 32;

size_t gguf_type_size(int32_t type);  // bytes of one scalar; 0 for STRING and ARRAY
const char * gguf_type_name(int32_t type);

struct gguf_kv {
    std::string key;
    int32_t type = 0;
    int32_t elem_type = -1;              // element type of an ARRAY, else -1
    uint64_t count = 1;                  // elements of an ARRAY, else 1
    size_t offset = 0;                   // file offset of a scalar or of a numeric array's first element
    std::vector<std::string> strings;    // STRING value, or the elements of an ARRAY of STRING
};

struct gguf_tensor_info {
    std::string name;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ggml order: ne[0] varies fastest
    int32_t type = 0;
    uint64_t offset = 0;           // relative to the data section
    uint64_t nbytes = 0;
};

struct gguf_file {
    uint32_t version = 3;
    uint32_t alignment = k_gguf_default_alignment;
    std::vector<gguf_kv> kvs;
    std::vector<gguf_tensor_info> tensors;
    uint64_t data_start = 0;                 // file offset of the data section
    std::shared_ptr<mapped_file> map;        // the bytes (null when parsed from a caller's buffer)
    std::unordered_map<std::string, size_t> tensor_index;  // name -> index into tensors

    const gguf_tensor_info * find_tensor(const std::string & name) const {
        const auto it = tensor_index.find(name);
        return it == tensor_index.end() ? nullptr : &tensors[it->second];
    }
};

// Parses and validates everything; throws error_kind::gguf naming the cause. The buffer form is
// what the fuzzer drives.
gguf_file gguf_parse(const uint8_t * data, size_t size);
gguf_file gguf_read(const std::string & path);

// Streaming writer. Add all KVs and tensor infos, then write each tensor's bytes in info order;
// commit() renames the finished file into place. Destroyed without commit(): no file is left.
class gguf_writer {
public:
    gguf_writer(const std::string & path, uint32_t alignment);

    // payload: little-endian scalar or numeric array bytes; strings: a STRING value or ARRAY of STRING.
    void add_kv(const std::string & key, int32_t type, int32_t elem_type, uint64_t count, const void * payload,
                size_t payload_bytes, const std::vector<std::string> & strings);
    void add_tensor_info(const std::string & name, uint32_t n_dims, const int64_t * ne, int32_t type);
    void write_header();
    void write_tensor_data(const void * data, size_t nbytes);  // the next tensor, in info order
    void commit();
    void abort();

    // The file preallocated and mapped (header written first), so that tensors can be produced in
    // place: tensor_data(i) is where tensor i's bytes go, and write_tensor_data given that address
    // copies nothing (it drops the finished pages from this process). Null where the file system
    // cannot preallocate; the writer then writes as before.
    const std::shared_ptr<output_map> & map_data();
    uint8_t * tensor_data(size_t i);

    size_t n_tensors() const { return infos_.size(); }
    size_t n_written() const { return next_tensor_; }
    const gguf_tensor_info & info(size_t i) const { return infos_[i]; }

private:
    atomic_file_writer out_;
    uint32_t alignment_;
    std::string header_kv_;  // serialized KVs
    size_t n_kv_ = 0;
    std::unordered_set<std::string> keys_;
    std::unordered_set<std::string> names_;
    std::vector<gguf_tensor_info> infos_;
    uint64_t data_size_ = 0;
    bool header_written_ = false;
    uint64_t data_start_ = 0;  // file offset of the data section, once the header is written
    size_t next_tensor_ = 0;
};

}  // namespace ggq
