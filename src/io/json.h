// A small strict JSON (RFC 8259) pull reader for headers of untrusted files.
//
// The caller walks the document value by value (begin_object / next_member / read_string / ...),
// so nothing is materialised that the caller does not keep: memory stays proportional to what is
// read, and unknown values are checked and skipped without being stored. Strict on purpose:
// - the whole text must be valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF);
// - duplicate keys in any object are rejected, at every depth;
// - nesting is limited (max_depth), so no input can exhaust the stack;
// - integers read with read_u64 must be exact non-negative integers that fit 64 bits;
// - numbers that would overflow a double are rejected (as serde_json does), underflow is fine;
// - only the four JSON whitespace characters, no comments, no trailing commas, no NaN.
// Every error throws ggq::error of the kind and function name given to the constructor.
#pragma once

#include "ggq-error.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace ggq {

// At most max_bytes of s, cut at a UTF-8 character boundary, with "..." appended when cut (for
// error messages quoting names from untrusted files).
std::string utf8_clip(std::string_view s, size_t max_bytes = 200);

// Strict UTF-8 check; returns the byte offset of the first invalid sequence, or text.size().
size_t utf8_invalid_offset(std::string_view text);

class json_reader {
public:
    enum class token { object, array, string, number, boolean, null };

    json_reader(std::string_view text, error_kind kind, const char * fn, int max_depth = 128);

    token peek();                 // kind of the next value (skips whitespace)
    void begin_object();          // consumes '{'
    bool next_member(std::string & key);  // false at '}' (consumed); else the key, ':' consumed
    void begin_array();           // consumes '['
    bool next_element();          // false at ']' (consumed); else positioned at the element
    std::string read_string();
    uint64_t read_u64();          // an exact non-negative integer below 2^64
    bool read_bool();
    void read_null();
    void skip_value();            // validates and discards one value of any kind
    void finish();                // only whitespace may follow the top-level value

    size_t position() const { return pos_; }
    [[noreturn]] void fail_at(const std::string & what) const;

private:
    struct frame {
        bool is_object;
        bool first;
        std::unordered_set<std::string> keys;
    };
    void skip_ws();
    char next_char();  // fails at the end of the text
    void expect_literal(const char * lit);
    void parse_string(std::string * out);
    void parse_number(std::string_view * out);
    void enter(bool is_object);

    std::string_view text_;
    size_t pos_ = 0;
    error_kind kind_;
    const char * fn_;
    int max_depth_;
    std::vector<frame> stack_;
};

// Appends s to out as a JSON string literal, escaped as serde_json does (", \, \b \f \n \r \t,
// other control characters as \u00xx; everything else, including non-ASCII, verbatim).
void json_append_string(std::string & out, std::string_view s);

}  // namespace ggq
