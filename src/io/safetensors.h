// safetensors: a strict memory-mapped reader and a streaming, atomic writer.
//
// Layout: u64 LE header length N, N bytes of UTF-8 JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F16", "shape": [...], "data_offsets": [b, e]}}
// and then the byte buffer; offsets are relative to the buffer. The reader validates exactly as the
// reference (huggingface/safetensors tensor.rs), plus it rejects duplicate JSON keys. The writer
// produces the reference layout byte for byte: tensors sorted by dtype alignment (descending), then
// name, packed; the header space-padded to a multiple of 8.
#pragma once

#include "io/file-util.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ggq {

// In the reference's enum order, which is increasing alignment (the writer sorts on it).
enum class st_dtype : uint8_t {
    BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ,
    I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64,
    COUNT,
};

constexpr uint64_t k_safetensors_max_header = 100000000;  // MAX_HEADER_SIZE of the reference

const char * st_dtype_name(st_dtype t);
size_t st_dtype_bits(st_dtype t);
bool st_dtype_from_name(std::string_view name, st_dtype * out);

struct st_tensor_info {
    std::string name;
    st_dtype dtype = st_dtype::U8;
    std::vector<uint64_t> shape;
    uint64_t begin = 0;  // data_offsets, relative to the byte buffer
    uint64_t end = 0;
};

struct st_header {
    std::vector<st_tensor_info> tensors;  // sorted by data offset (file order)
    bool has_metadata = false;
    std::vector<std::pair<std::string, std::string>> metadata;  // in header order
    uint64_t data_start = 0;  // 8 + N
};

// Parses and validates a whole safetensors file held in memory. Throws error_kind::safetensors
// from "safetensors_read" naming the cause (and the tensor, where there is one).
st_header parse_safetensors(const uint8_t * data, size_t size);

// Byte count of a tensor, or fails with ValidationOverflow / sub-byte misalignment.
uint64_t st_tensor_nbytes(st_dtype dtype, const std::vector<uint64_t> & shape, const std::string & name,
                          const char * fn = "safetensors_read");

class safetensors_file {
public:
    explicit safetensors_file(const std::string & path);

    const st_header & header() const { return header_; }
    const std::string & path() const { return file_.path(); }
    size_t size() const { return file_.size(); }
    const st_tensor_info * find(std::string_view name) const;  // nullptr if absent
    const st_tensor_info & at(std::string_view name) const;    // fails naming the tensor
    const uint8_t * data(const st_tensor_info & t) const { return file_.data() + header_.data_start + t.begin; }

private:
    mapped_file file_;
    st_header header_;
    std::unordered_map<std::string_view, size_t> index_;
};

// Converts n elements of a float (or integer/bool) dtype to float32. F4/F6 are not convertible.
void st_to_float32(st_dtype dtype, const void * src, float * dst, size_t n);

struct st_tensor_spec {
    std::string name;
    st_dtype dtype = st_dtype::U8;
    std::vector<uint64_t> shape;
};

// The JSON header the reference writer would produce, padded; and the order in which tensor data
// follows it (indices into specs). Fails on duplicate names, "__metadata__" as a name, or a header
// over the size limit.
std::string st_build_header(const std::vector<st_tensor_spec> & specs, const std::vector<std::pair<std::string, std::string>> * metadata,
                            std::vector<size_t> * order, std::vector<uint64_t> * offsets);

// Streaming writer: the header is written from names, dtypes and shapes alone; then the data of each
// tensor, one at a time, in order() (the reference layout order). Nothing appears under `path`
// until commit(); destroying the writer earlier deletes the temporary file.
class safetensors_writer {
public:
    safetensors_writer(const std::string & path, std::vector<st_tensor_spec> specs,
                       const std::vector<std::pair<std::string, std::string>> * metadata);

    const std::vector<st_tensor_spec> & specs() const { return specs_; }
    const std::vector<size_t> & order() const { return order_; }  // indices into specs()
    size_t n_written() const { return next_; }
    uint64_t total_size() const { return out_.offset(); }
    uint64_t expected_nbytes(size_t spec_index) const { return nbytes_[spec_index]; }

    // The next tensor in order() must be `name`; nbytes must equal its byte count.
    void write_tensor(std::string_view name, const void * data, size_t nbytes);
    void commit();  // fails unless every tensor was written
    void abort() { out_.abort(); }

    // As gguf_writer's: the file preallocated and mapped, tensor_data(i) the place of specs()[i]'s
    // bytes (null where the file system cannot preallocate); write_tensor given that address copies
    // nothing. release_tensor(i): that tensor's bytes are in place, its pages may leave this process
    // before its turn in order() comes.
    const std::shared_ptr<output_map> & map_data();
    uint8_t * tensor_data(size_t spec_index);
    void release_tensor(size_t spec_index);

private:
    std::vector<st_tensor_spec> specs_;
    std::vector<size_t> order_;
    std::vector<uint64_t> offsets_;  // of each spec's data, from the start of the data
    uint64_t data_start_ = 0;
    uint64_t data_size_ = 0;
    std::vector<uint64_t> nbytes_;
    size_t next_ = 0;
    std::string header_;
    atomic_file_writer out_;
};

}  // namespace ggq
