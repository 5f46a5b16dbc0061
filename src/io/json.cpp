#include "json.h"

namespace ggq {

size_t utf8_invalid_offset(std::string_view text) {
    const auto * s = reinterpret_cast<const unsigned char *>(text.data());
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;       // no overlongs
            if (c == 0xED) hi = 0x9F;       // no surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;       // no overlongs
            if (c == 0xF4) hi = 0x8F;       // nothing past U+10FFFF
        } else {
            return i;
        }
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
        }
        i += len;
    }
    return n;
}

std::string utf8_clip(std::string_view s, size_t max_bytes) {
    if (s.size() <= max_bytes) return std::string(s);
    size_t n = max_bytes;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) --n;  // s[n] starts the part cut off
    return std::string(s.substr(0, n)) + "...";
}

json_reader::json_reader(std::string_view text, error_kind kind, const char * fn, int max_depth)
    : text_(text), kind_(kind), fn_(fn), max_depth_(max_depth) {
    const size_t bad = utf8_invalid_offset(text);
    if (bad != text.size()) {
        pos_ = bad;
        fail_at("invalid UTF-8");
    }
}

void json_reader::fail_at(const std::string & what) const {
    fail(kind_, fn_, "invalid JSON header: " + what + " at byte " + std::to_string(pos_));
}

void json_reader::skip_ws() {
    while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ++pos_;
    }
}

char json_reader::next_char() {
    if (pos_ >= text_.size()) fail_at("unexpected end of text");
    return text_[pos_++];
}

json_reader::token json_reader::peek() {
    skip_ws();
    if (pos_ >= text_.size()) fail_at("unexpected end of text, expected a value");
    switch (text_[pos_]) {
        case '{': return token::object;
        case '[': return token::array;
        case '"': return token::string;
        case 't':
        case 'f': return token::boolean;
        case 'n': return token::null;
        case '-': return token::number;
        default:
            if (text_[pos_] >= '0' && text_[pos_] <= '9') return token::number;
    }
    fail_at("unexpected character, expected a value");
}

void json_reader::enter(bool is_object) {
    if ((int)stack_.size() >= max_depth_) fail_at("nesting deeper than " + std::to_string(max_depth_));
    stack_.push_back(frame{is_object, true, {}});
}

void json_reader::begin_object() {
    if (peek() != token::object) fail_at("expected an object");
    ++pos_;
    enter(true);
}

void json_reader::begin_array() {
    if (peek() != token::array) fail_at("expected an array");
    ++pos_;
    enter(false);
}

bool json_reader::next_member(std::string & key) {
    if (stack_.empty() || !stack_.back().is_object) fail_at("internal: next_member outside an object");
    frame & f = stack_.back();
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == '}' && f.first) {
        ++pos_;
        stack_.pop_back();
        return false;
    }
    if (!f.first) {
        const char c = next_char();
        if (c == '}') {
            stack_.pop_back();
            return false;
        }
        if (c != ',') {
            --pos_;
            fail_at("expected ',' or '}' in an object");
        }
        skip_ws();
    }
    f.first = false;
    if (pos_ >= text_.size() || text_[pos_] != '"') fail_at("expected a string key");
    key.clear();
    const size_t key_pos = pos_;
    parse_string(&key);
    if (!f.keys.insert(key).second) {
        pos_ = key_pos;
        fail_at("duplicate key \"" + utf8_clip(key) + "\"");
    }
    skip_ws();
    if (next_char() != ':') {
        --pos_;
        fail_at("expected ':' after a key");
    }
    return true;
}

bool json_reader::next_element() {
    if (stack_.empty() || stack_.back().is_object) fail_at("internal: next_element outside an array");
    frame & f = stack_.back();
    skip_ws();
    if (pos_ < text_.size() && text_[pos_] == ']' && f.first) {
        ++pos_;
        stack_.pop_back();
        return false;
    }
    if (!f.first) {
        const char c = next_char();
        if (c == ']') {
            stack_.pop_back();
            return false;
        }
        if (c != ',') {
            --pos_;
            fail_at("expected ',' or ']' in an array");
        }
    }
    f.first = false;
    return true;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void append_utf8(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char)cp;
    } else if (cp < 0x800) {
        out += (char)(0xC0 | (cp >> 6));
        out += (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char)(0xE0 | (cp >> 12));
        out += (char)(0x80 | ((cp >> 6) & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    } else {
        out += (char)(0xF0 | (cp >> 18));
        out += (char)(0x80 | ((cp >> 12) & 0x3F));
        out += (char)(0x80 | ((cp >> 6) & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    }
}

void json_reader::parse_string(std::string * out) {
    // at '"'; the text is valid UTF-8, so multi-byte sequences pass through whole
    ++pos_;
    auto read_hex4 = [this]() -> uint32_t {
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const int d = hex_digit(next_char());
            if (d < 0) {
                --pos_;
                fail_at("bad \\u escape");
            }
            v = v * 16 + (uint32_t)d;
        }
        return v;
    };
    for (;;) {
        const size_t start = pos_;
        while (pos_ < text_.size()) {
            const unsigned char c = (unsigned char)text_[pos_];
            if (c == '"' || c == '\\' || c < 0x20) break;
            ++pos_;
        }
        if (out != nullptr) out->append(text_.data() + start, pos_ - start);
        const char c = next_char();
        if (c == '"') return;
        if (c != '\\') {
            --pos_;
            fail_at("control character in a string");
        }
        const char e = next_char();
        char lit = 0;
        switch (e) {
            case '"': lit = '"'; break;
            case '\\': lit = '\\'; break;
            case '/': lit = '/'; break;
            case 'b': lit = '\b'; break;
            case 'f': lit = '\f'; break;
            case 'n': lit = '\n'; break;
            case 'r': lit = '\r'; break;
            case 't': lit = '\t'; break;
            case 'u': {
                uint32_t cp = read_hex4();
                if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("lone low surrogate in a \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (next_char() != '\\' || next_char() != 'u') fail_at("lone high surrogate in a \\u escape");
                    const uint32_t lo = read_hex4();
                    if (lo < 0xDC00 || lo > 0xDFFF) fail_at("high surrogate not followed by a low surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (out != nullptr) append_utf8(*out, cp);
                continue;
            }
            default:
                --pos_;
                fail_at("bad escape in a string");
        }
        if (out != nullptr) *out += lit;
    }
}

// False when a number read as a double would overflow to infinity (serde_json rejects those as
// "number out of range"; underflow to zero is fine). Only the decimal exponent matters: the
// position of the first significant digit plus the exponent part.
static bool fits_double(std::string_view num) {
    size_t i = (!num.empty() && num[0] == '-') ? 1 : 0;
    int64_t int_digits = 0, lead_frac_zeros = 0;
    bool seen_nonzero = false;
    for (; i < num.size() && num[i] >= '0' && num[i] <= '9'; ++i) {
        if (num[i] != '0') seen_nonzero = true;
        if (seen_nonzero) ++int_digits;
    }
    if (i < num.size() && num[i] == '.') {
        for (++i; i < num.size() && num[i] >= '0' && num[i] <= '9'; ++i) {
            if (num[i] != '0') seen_nonzero = true;
            if (!seen_nonzero) ++lead_frac_zeros;
        }
    }
    if (!seen_nonzero) return true;  // zero
    int64_t exp = 0;
    bool neg_exp = false;
    if (i < num.size() && (num[i] == 'e' || num[i] == 'E')) {
        ++i;
        if (i < num.size() && (num[i] == '+' || num[i] == '-')) neg_exp = num[i++] == '-';
        for (; i < num.size(); ++i) {
            if (exp < 1000000) exp = exp * 10 + (num[i] - '0');  // saturates far beyond any double
        }
    }
    if (neg_exp) exp = -exp;
    // value = 0.d1d2... * 10^mag
    const int64_t mag = (int_digits > 0 ? int_digits : -lead_frac_zeros) + exp;
    if (mag < 309) return true;
    if (mag > 309) return false;
    // 10^308 <= value < 10^309: finite iff below 2^1024 - 2^970, the midpoint between DBL_MAX and
    // 2^1024 (from there round-to-nearest-even gives infinity). Compare the significant digits.
    static constexpr std::string_view k_limit =
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207"
        "096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764"
        "475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177"
        "904174497792";
    std::string digits;
    for (const char c : num) {
        if (c == 'e' || c == 'E') break;
        if (c >= '0' && c <= '9' && !(digits.empty() && c == '0')) digits += c;
    }
    for (size_t k = 0; k < digits.size() || k < k_limit.size(); ++k) {
        const char a = k < digits.size() ? digits[k] : '0';
        const char b = k < k_limit.size() ? k_limit[k] : '0';
        if (a != b) return a < b;
    }
    return false;  // exactly the midpoint: rounds to infinity
}

void json_reader::parse_number(std::string_view * out) {
    const size_t start = pos_;
    auto digit = [this]() { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; };
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    if (!digit()) fail_at("bad number");
    if (text_[pos_] == '0') {
        ++pos_;
    } else {
        while (digit()) ++pos_;
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        if (!digit()) fail_at("bad number: no digit after '.'");
        while (digit()) ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
        if (!digit()) fail_at("bad number: no digit in the exponent");
        while (digit()) ++pos_;
    }
    const std::string_view num = text_.substr(start, pos_ - start);
    if (!fits_double(num)) {
        pos_ = start;
        fail_at("number " + utf8_clip(num, 40) + " out of range");
    }
    if (out != nullptr) *out = num;
}

std::string json_reader::read_string() {
    if (peek() != token::string) fail_at("expected a string");
    std::string s;
    parse_string(&s);
    return s;
}

uint64_t json_reader::read_u64() {
    if (peek() != token::number) fail_at("expected a non-negative integer");
    const size_t start = pos_;
    std::string_view num;
    parse_number(&num);
    uint64_t v = 0;
    for (char c : num) {
        if (c < '0' || c > '9') {
            pos_ = start;
            fail_at("expected a non-negative integer, got " + utf8_clip(num, 40));
        }
        if (__builtin_mul_overflow(v, (uint64_t)10, &v) || __builtin_add_overflow(v, (uint64_t)(c - '0'), &v)) {
            pos_ = start;
            fail_at("integer " + utf8_clip(num, 40) + " does not fit 64 bits");
        }
    }
    return v;
}

void json_reader::expect_literal(const char * lit) {
    for (const char * p = lit; *p != 0; ++p) {
        if (pos_ >= text_.size() || text_[pos_] != *p) fail_at(std::string("expected '") + lit + "'");
        ++pos_;
    }
}

bool json_reader::read_bool() {
    if (peek() != token::boolean) fail_at("expected true or false");
    if (text_[pos_] == 't') {
        expect_literal("true");
        return true;
    }
    expect_literal("false");
    return false;
}

void json_reader::read_null() {
    if (peek() != token::null) fail_at("expected null");
    expect_literal("null");
}

void json_reader::skip_value() {
    std::string key;
    switch (peek()) {
        case token::object:
            begin_object();
            while (next_member(key)) skip_value();
            return;
        case token::array:
            begin_array();
            while (next_element()) skip_value();
            return;
        case token::string: parse_string(nullptr); return;
        case token::number: parse_number(nullptr); return;
        case token::boolean: read_bool(); return;
        case token::null: read_null(); return;
    }
}

void json_reader::finish() {
    if (!stack_.empty()) fail_at("internal: finish inside a value");
    skip_ws();
    if (pos_ != text_.size()) fail_at("trailing characters after the JSON value");
}

void json_append_string(std::string & out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const unsigned char c = (unsigned char)ch;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

}  // namespace ggq
