#include "cyrus/dlist.h"

#include <charconv>
#include <span>
#include <string>

#include "cyrus/dlist_internal.h"

namespace cyrsync::cyrus {

Dlist::Dlist() = default;
Dlist::~Dlist() = default;
Dlist::Dlist(const Dlist&) = default;
Dlist::Dlist(Dlist&&) noexcept = default;
Dlist& Dlist::operator=(const Dlist&) = default;
Dlist& Dlist::operator=(Dlist&&) noexcept = default;

const Dlist* Dlist::Find(std::string_view key) const {
  for (const auto& [k, v] : kv) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string Dlist::GetString(std::string_view key, std::string_view def) const {
  const Dlist* v = Find(key);
  if (v == nullptr || v->kind != Kind::kAtom) return std::string(def);
  return v->str;
}

namespace internal {
namespace {

// Real Cyrus values nest at most ~4 deep (mailboxes.db name history); the cap only stops
// hostile input from exhausting the stack.
constexpr int kMaxDepth = 64;
// Literals larger than this are not metadata; refuse rather than allocate.
constexpr uint64_t kMaxLiteral = uint64_t{1} << 30;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Bytes that end an atom. Cyrus never prints these inside atoms (§8.4).
bool EndsAtom(char c) { return IsSpace(c) || c == '(' || c == ')' || c == '\0'; }

// Every Parse* method takes an output that may be null: then the value is checked exactly as it
// would be parsed, but nothing is built (a mailboxes.db record's name history, for one).
class DlistParser {
 public:
  DlistParser(std::string_view text, size_t base) : text_(text), base_(base) {}

  // keys: for a kvlist at the top, only these keys' pairs are built (nullptr: every pair).
  Result<Dlist> ParseAll(std::span<const std::string_view>* keys = nullptr) {
    SkipSpace();
    Dlist d;
    keys_ = keys;
    RETURN_IF_ERROR(ParseValue(0, &d));
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing bytes");
    return d;
  }

 private:
  Status Error(std::string_view what) const {
    return CorruptionError("dlist: " + std::string(what) + " at offset " +
                           std::to_string(base_ + pos_));
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }

  Status ParseValue(int depth, Dlist* out) {
    if (AtEnd()) return Error("unexpected end of input");
    if (depth > kMaxDepth) return Error("nesting too deep");
    char c = Peek();
    if (c == '(') {
      ++pos_;
      return ParseListBody(depth + 1, out);
    }
    if (c == '%') return ParsePercent(depth, out);
    if (c == ')') return Error("unexpected ')'");
    bool may_be_nil = c != '"' && c != '{';
    std::string s;
    RETURN_IF_ERROR(ParseString(out ? &s : nullptr));
    if (out == nullptr) return Status::Ok();
    if (may_be_nil && s == "NIL") return Status::Ok();  // kNil; a quoted "NIL" stays a string
    out->kind = Dlist::Kind::kAtom;
    out->str = std::move(s);
    return Status::Ok();
  }

  Status ParsePercent(int depth, Dlist* out) {
    if (pos_ + 1 >= text_.size() || text_[pos_ + 1] != '(') {
      // "%{part guid size}" file literals belong to the sync protocol, not to files we read.
      return Error("expected '(' after '%'");
    }
    pos_ += 2;
    return ParseKvBody(depth + 1, out);
  }

  // After "(": values separated by whitespace up to ")".
  Status ParseListBody(int depth, Dlist* out) {
    if (out) out->kind = Dlist::Kind::kList;
    for (;;) {
      SkipSpace();
      if (AtEnd()) return Error("unterminated list");
      if (Peek() == ')') {
        ++pos_;
        return Status::Ok();
      }
      Dlist item;
      RETURN_IF_ERROR(ParseValue(depth, out ? &item : nullptr));
      if (out) out->items.push_back(std::move(item));
    }
  }

  bool Wanted(std::string_view key, int depth) const {
    if (depth != 1 || keys_ == nullptr) return true;
    for (std::string_view k : *keys_) {
      if (k == key) return true;
    }
    return false;
  }

  // After "%(": key/value pairs up to ")".
  Status ParseKvBody(int depth, Dlist* out) {
    if (out) out->kind = Dlist::Kind::kKvList;
    for (;;) {
      SkipSpace();
      if (AtEnd()) return Error("unterminated kvlist");
      if (Peek() == ')') {
        ++pos_;
        return Status::Ok();
      }
      char c = Peek();
      if (c == '(' || c == '%') return Error("kvlist key is not a string");
      std::string key;
      RETURN_IF_ERROR(ParseString(out ? &key : nullptr));
      SkipSpace();
      if (AtEnd() || Peek() == ')') return Error("kvlist key without value");
      const bool build = out != nullptr && Wanted(key, depth);
      Dlist value;
      RETURN_IF_ERROR(ParseValue(depth, build ? &value : nullptr));
      if (build) out->kv.emplace_back(std::move(key), std::move(value));
    }
  }

  Status ParseString(std::string* out) {
    char c = Peek();
    if (c == '"') return ParseQuoted(out);
    if (c == '{') return ParseLiteral(out);
    return ParseAtom(out);
  }

  Status ParseAtom(std::string* out) {
    size_t start = pos_;
    while (!AtEnd() && !EndsAtom(Peek())) ++pos_;
    if (pos_ == start) return Error("expected a value");
    if (out) out->assign(text_.substr(start, pos_ - start));
    return Status::Ok();
  }

  Status ParseQuoted(std::string* out) {
    ++pos_;  // opening quote
    while (!AtEnd()) {
      char c = Peek();
      if (c == '"') {
        ++pos_;
        return Status::Ok();
      }
      if (c == '\r' || c == '\n') return Error("line break in quoted string");
      if (c == '\\') {
        ++pos_;
        if (AtEnd()) break;
        c = Peek();
      }
      if (out) out->push_back(c);
      ++pos_;
    }
    return Error("unterminated quoted string");
  }

  // "{N}" or "{N+}", CRLF (a bare LF is tolerated), then N raw bytes.
  Status ParseLiteral(std::string* out) {
    ++pos_;  // '{'
    size_t start = pos_;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') ++pos_;
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(text_.data() + start, text_.data() + pos_, n);
    if (pos_ == start || ec != std::errc() || n > kMaxLiteral) {
      return Error("bad literal length");
    }
    if (!AtEnd() && Peek() == '+') ++pos_;
    if (AtEnd() || Peek() != '}') return Error("bad literal header");
    ++pos_;
    if (!AtEnd() && Peek() == '\r') ++pos_;
    if (AtEnd() || Peek() != '\n') return Error("literal header not followed by newline");
    ++pos_;
    if (text_.size() - pos_ < n) return Error("truncated literal");
    if (out) out->assign(text_.substr(pos_, n));
    pos_ += n;
    return Status::Ok();
  }

  std::string_view text_;
  size_t base_;
  size_t pos_ = 0;
  std::span<const std::string_view>* keys_ = nullptr;
};

}  // namespace

Result<Dlist> ParseDlistAt(std::string_view text, size_t base) {
  return DlistParser(text, base).ParseAll();
}

}  // namespace internal

Result<Dlist> ParseDlist(std::string_view text) { return internal::ParseDlistAt(text, 0); }

Result<Dlist> ParseDlistKeys(std::string_view text, std::span<const std::string_view> keys) {
  return internal::DlistParser(text, 0).ParseAll(&keys);
}

namespace {

bool IsAtomSafe(std::string_view v) {
  if (v.empty() || v.size() >= 1024 || v == "NIL") return false;
  for (unsigned char c : v) {
    if (c < 0x1F || c == 0x7F || c >= 0x80 || c == ' ') return false;
    if (std::string_view("{()\"%*\\").find(static_cast<char>(c)) != std::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool IsQuotable(std::string_view v) {
  if (v.size() >= 1024) return false;
  for (unsigned char c : v) {
    if (c == '\r' || c == '\n' || c == '"' || c == '%' || c == '\\' || c >= 0x80) return false;
  }
  return true;
}

void PrintString(std::string_view v, std::string* out) {
  if (IsAtomSafe(v)) {
    out->append(v);
  } else if (IsQuotable(v)) {
    out->append("\"").append(v).append("\"");
  } else {
    out->append("{").append(std::to_string(v.size())).append("}\r\n").append(v);
  }
}

void Print(const Dlist& v, std::string* out) {
  switch (v.kind) {
    case Dlist::Kind::kNil: out->append("NIL"); break;
    case Dlist::Kind::kAtom: PrintString(v.str, out); break;
    case Dlist::Kind::kList:
      out->push_back('(');
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) out->push_back(' ');
        Print(v.items[i], out);
      }
      out->push_back(')');
      break;
    case Dlist::Kind::kKvList:
      out->append("%(");
      for (size_t i = 0; i < v.kv.size(); ++i) {
        if (i) out->push_back(' ');
        PrintString(v.kv[i].first, out);  // real keys (T, N, ACL ids) are atoms
        out->push_back(' ');
        Print(v.kv[i].second, out);
      }
      out->push_back(')');
      break;
  }
}

}  // namespace

std::string PrintDlist(const Dlist& v) {
  std::string out;
  Print(v, &out);
  return out;
}

}  // namespace cyrsync::cyrus
