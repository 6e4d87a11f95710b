#include "snapshot/run_marker.h"

#include <map>

namespace cyrsync::snapshot {
namespace {

constexpr std::string_view kRunsPrefix = "runs/";
constexpr std::string_view kStartSuffix = ".json";
constexpr std::string_view kEndSuffix = ".end.json";
constexpr size_t kMaxRunIdDigits = 18;

std::optional<int64_t> ParseRunId(std::string_view s) {
  if (s.empty() || s.size() > kMaxRunIdDigits || s[0] == '0') return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

void AppendJsonString(std::string* out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      *out += "\\u00";
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

class JsonObject {
 public:
  void Str(std::string_view key, std::string_view v) {
    Key(key);
    AppendJsonString(&out_, v);
  }
  void Int(std::string_view key, int64_t v) {
    Key(key);
    out_ += std::to_string(v);
  }
  std::string Done() { return out_ + "}\n"; }

 private:
  void Key(std::string_view key) {
    out_.push_back(out_.size() == 1 ? ' ' : ',');
    AppendJsonString(&out_, key);
    out_.push_back(':');
  }
  std::string out_ = "{";
};

struct JsonValue {
  bool is_string = false;
  std::string str;
  int64_t num = 0;
};

// The subset of JSON a marker uses: one object whose values are strings or integers.
class FlatJsonParser {
 public:
  explicit FlatJsonParser(std::string_view s) : s_(s) {}
  Result<std::map<std::string, JsonValue>> Parse();

 private:
  Status Fail(const std::string& what) const {
    return CorruptionError("run marker: " + what + " at byte " + std::to_string(i_));
  }
  void SkipWs() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool Eat(char c) {
    SkipWs();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  Result<std::string> String();
  Result<uint32_t> Hex4();
  Status Escape(std::string* out);
  Result<int64_t> Integer();
  Result<JsonValue> Value();

  std::string_view s_;
  size_t i_ = 0;
};

Result<uint32_t> FlatJsonParser::Hex4() {
  if (s_.size() - i_ < 4) return Fail("short \\u escape");
  uint32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    char c = s_[i_++];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<uint32_t>(c - '0');
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
      v |= static_cast<uint32_t>((c | 0x20) - 'a' + 10);
    } else {
      return Fail("bad \\u escape");
    }
  }
  return v;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

Status FlatJsonParser::Escape(std::string* out) {
  if (i_ >= s_.size()) return Fail("unterminated escape");
  char c = s_[i_++];
  static const std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
  if (size_t k = kFrom.find(c); k != std::string_view::npos) {
    out->push_back(kTo[k]);
    return Status::Ok();
  }
  if (c != 'u') return Fail("bad escape");
  ASSIGN_OR_RETURN(uint32_t cp, Hex4());
  if (cp >= 0xdc00 && cp <= 0xdfff) return Fail("lone low surrogate");
  if (cp >= 0xd800 && cp <= 0xdbff) {
    if (s_.substr(i_, 2) != "\\u") return Fail("lone high surrogate");
    i_ += 2;
    ASSIGN_OR_RETURN(uint32_t lo, Hex4());
    if (lo < 0xdc00 || lo > 0xdfff) return Fail("bad surrogate pair");
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  AppendUtf8(out, cp);
  return Status::Ok();
}

Result<std::string> FlatJsonParser::String() {
  if (!Eat('"')) return Fail("expected string");
  std::string out;
  while (i_ < s_.size()) {
    char c = s_[i_++];
    if (c == '"') return out;
    if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
    if (c == '\\') {
      RETURN_IF_ERROR(Escape(&out));
    } else {
      out.push_back(c);
    }
  }
  return Fail("unterminated string");
}

Result<int64_t> FlatJsonParser::Integer() {
  bool neg = i_ < s_.size() && s_[i_] == '-';
  if (neg) ++i_;
  size_t start = i_;
  int64_t v = 0;
  for (; i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; ++i_) {
    if (i_ - start >= kMaxRunIdDigits) return Fail("integer too large");
    v = v * 10 + (s_[i_] - '0');
  }
  if (i_ == start) return Fail("expected a value");
  return neg ? -v : v;
}

Result<JsonValue> FlatJsonParser::Value() {
  SkipWs();
  JsonValue v;
  if (i_ < s_.size() && s_[i_] == '"') {
    v.is_string = true;
    ASSIGN_OR_RETURN(v.str, String());
  } else {
    ASSIGN_OR_RETURN(v.num, Integer());
  }
  return v;
}

Result<std::map<std::string, JsonValue>> FlatJsonParser::Parse() {
  std::map<std::string, JsonValue> out;
  if (!Eat('{')) return Fail("expected '{'");
  if (!Eat('}')) {
    do {
      ASSIGN_OR_RETURN(std::string key, String());
      if (!Eat(':')) return Fail("expected ':'");
      ASSIGN_OR_RETURN(out[key], Value());
    } while (Eat(','));
    if (!Eat('}')) return Fail("expected '}'");
  }
  SkipWs();
  if (i_ != s_.size()) return Fail("trailing bytes");
  return out;
}

using Fields = std::map<std::string, JsonValue>;

Result<int64_t> IntField(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  if (it == f.end() || it->second.is_string) {
    return CorruptionError("run marker: missing integer \"" + key + "\"");
  }
  return it->second.num;
}

Result<std::string> StrField(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  if (it == f.end() || !it->second.is_string) {
    return CorruptionError("run marker: missing string \"" + key + "\"");
  }
  return it->second.str;
}

Status CheckFormat(const Fields& f) {
  ASSIGN_OR_RETURN(std::string format, StrField(f, "format"));
  if (format != kArchiveFormatName) return CorruptionError("run marker: format " + format);
  ASSIGN_OR_RETURN(int64_t version, IntField(f, "version"));
  if (version < 1 || version > kArchiveFormatVersion) {
    return CorruptionError("run marker: unsupported version " + std::to_string(version));
  }
  return Status::Ok();
}

}  // namespace

std::string RunMarkerName(int64_t run_id) {
  return std::string(kRunsPrefix) + std::to_string(run_id) + std::string(kStartSuffix);
}

std::string RunEndMarkerName(int64_t run_id) {
  return std::string(kRunsPrefix) + std::to_string(run_id) + std::string(kEndSuffix);
}

std::optional<MarkerName> ParseMarkerName(std::string_view name) {
  if (!name.starts_with(kRunsPrefix)) return std::nullopt;
  name.remove_prefix(kRunsPrefix.size());
  MarkerName m;
  if (name.ends_with(kEndSuffix)) {
    m.end = true;
    name.remove_suffix(kEndSuffix.size());
  } else if (name.ends_with(kStartSuffix)) {
    name.remove_suffix(kStartSuffix.size());
  } else {
    return std::nullopt;
  }
  auto id = ParseRunId(name);
  if (!id) return std::nullopt;
  m.run_id = *id;
  return m;
}

std::string EncodeRunMarker(const RunInfo& run) {
  JsonObject o;
  o.Str("format", kArchiveFormatName);
  o.Int("version", kArchiveFormatVersion);
  o.Int("run_id", run.run_id);
  o.Int("started", run.started);
  o.Str("source", run.source);
  o.Str("user", run.user);
  return o.Done();
}

std::string EncodeRunEndMarker(const RunInfo& run) {
  JsonObject o;
  o.Str("format", kArchiveFormatName);
  o.Int("version", kArchiveFormatVersion);
  o.Int("run_id", run.run_id);
  o.Int("finished", run.finished);
  return o.Done();
}

Result<RunInfo> DecodeRunMarker(std::string_view json, bool end) {
  ASSIGN_OR_RETURN(Fields f, FlatJsonParser(json).Parse());
  RETURN_IF_ERROR(CheckFormat(f));
  RunInfo run;
  ASSIGN_OR_RETURN(run.run_id, IntField(f, "run_id"));
  if (end) {
    ASSIGN_OR_RETURN(run.finished, IntField(f, "finished"));
    return run;
  }
  ASSIGN_OR_RETURN(run.started, IntField(f, "started"));
  ASSIGN_OR_RETURN(run.source, StrField(f, "source"));
  ASSIGN_OR_RETURN(run.user, StrField(f, "user"));
  return run;
}

}  // namespace cyrsync::snapshot
