#include "snapshot/tar.h"

#include <algorithm>
#include <array>
#include <optional>

namespace cyrsync::snapshot {
namespace {

// ustar header layout (POSIX.1-1988 as amended by POSIX.1-2001, the "pax" format).
struct Field {
  size_t off;
  size_t len;
};
constexpr Field kName{0, 100};
constexpr Field kMode{100, 8};
constexpr Field kUid{108, 8};
constexpr Field kGid{116, 8};
constexpr Field kSize{124, 12};
constexpr Field kMtime{136, 12};
constexpr Field kChksum{148, 8};
constexpr size_t kTypeflag = 156;
constexpr Field kLinkname{157, 100};
constexpr Field kMagic{257, 6};
constexpr Field kVersion{263, 2};
constexpr Field kDevmajor{329, 8};
constexpr Field kDevminor{337, 8};
constexpr Field kPrefix{345, 155};

constexpr char kTypeFile = '0';
constexpr char kTypeFileOld = '\0';
constexpr char kTypeSymlink = '2';
constexpr char kTypePax = 'x';
constexpr std::string_view kUstarMagic("ustar\0", 6);
constexpr std::string_view kUstarVersion = "00";
constexpr uint64_t kMaxOctal11 = (uint64_t{1} << 33) - 1;  // 11 octal digits
constexpr uint64_t kMaxValue = uint64_t{1} << 62;          // sizes and times beyond are corrupt

uint64_t PadOf(uint64_t size) { return (kTarBlockSize - size % kTarBlockSize) % kTarBlockSize; }

// Writes v as zero-padded octal digits filling all but the last byte, which stays NUL.
void PutOctal(std::string* block, Field f, uint64_t v) {
  for (size_t i = f.len - 1; i-- > 0;) {
    (*block)[f.off + i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
}

void PutString(std::string* block, Field f, std::string_view s) {
  block->replace(f.off, std::min(s.size(), f.len), s.substr(0, f.len));
}

std::string PaxRecord(std::string_view key, std::string_view value) {
  const size_t rest = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = rest + std::to_string(rest).size();
  if (std::to_string(len).size() + rest != len) len = rest + std::to_string(len).size();
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

uint32_t HeaderChecksum(std::string_view block) {
  uint32_t sum = 0;
  for (size_t i = 0; i < kTarBlockSize; ++i) {
    bool in_chksum = i >= kChksum.off && i < kChksum.off + kChksum.len;
    sum += in_chksum ? uint32_t{' '} : static_cast<unsigned char>(block[i]);
  }
  return sum;
}

// One ustar header block; `size` and `mtime` must already fit their fields.
std::string UstarBlock(std::string_view name, char type, std::string_view link, uint64_t size,
                       uint64_t mtime, uint32_t mode) {
  std::string b(kTarBlockSize, '\0');
  PutString(&b, kName, name);
  PutOctal(&b, kMode, mode & 07777);
  PutOctal(&b, kUid, 0);
  PutOctal(&b, kGid, 0);
  PutOctal(&b, kSize, size);
  PutOctal(&b, kMtime, mtime);
  b[kTypeflag] = type;
  PutString(&b, kLinkname, link);
  PutString(&b, kMagic, kUstarMagic);
  PutString(&b, kVersion, kUstarVersion);
  PutOctal(&b, kDevmajor, 0);
  PutOctal(&b, kDevminor, 0);
  uint32_t sum = HeaderChecksum(b);
  // Six octal digits, NUL, space: the form every tar since V7 accepts.
  PutOctal(&b, {kChksum.off, 7}, sum);
  b[kChksum.off + 7] = ' ';
  return b;
}

bool FitsOctal11(int64_t v) { return v >= 0 && static_cast<uint64_t>(v) <= kMaxOctal11; }

std::string PaxRecordsFor(const TarHeader& h) {
  std::string recs;
  if (h.name.size() > kName.len) recs += PaxRecord("path", h.name);
  if (h.link_target.size() > kLinkname.len) recs += PaxRecord("linkpath", h.link_target);
  if (h.size > kMaxOctal11) recs += PaxRecord("size", std::to_string(h.size));
  if (!FitsOctal11(h.mtime)) recs += PaxRecord("mtime", std::to_string(h.mtime));
  return recs;
}

Status CheckEncodable(const TarHeader& h) {
  if (h.name.empty()) return InvalidArgumentError("tar: empty entry name");
  if (h.name.find('\0') != std::string::npos) {
    return InvalidArgumentError("tar: NUL in entry name");
  }
  if (h.kind == EntryKind::kSymlink) {
    if (h.link_target.empty()) {
      return InvalidArgumentError("tar: empty symlink target for " + h.name);
    }
    if (h.link_target.find('\0') != std::string::npos) {
      return InvalidArgumentError("tar: NUL in symlink target for " + h.name);
    }
    if (h.size != 0) return InvalidArgumentError("tar: symlink with data: " + h.name);
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> EncodeTarHeader(const TarHeader& h) {
  RETURN_IF_ERROR(CheckEncodable(h));
  const uint64_t mtime = FitsOctal11(h.mtime) ? static_cast<uint64_t>(h.mtime) : 0;
  const uint64_t size = h.size <= kMaxOctal11 ? h.size : 0;
  std::string out;
  std::string recs = PaxRecordsFor(h);
  if (!recs.empty()) {
    std::string base = h.name.substr(h.name.rfind('/') + 1);
    std::string pax_name = ("PaxHeaders/" + base).substr(0, kName.len);
    out += UstarBlock(pax_name, kTypePax, "", recs.size(), mtime, 0600);
    out += recs;
    out.append(PadOf(recs.size()), '\0');
  }
  const bool link = h.kind == EntryKind::kSymlink;
  out += UstarBlock(h.name, link ? kTypeSymlink : kTypeFile, link ? h.link_target : "", size, mtime,
                    h.mode);
  return out;
}

std::string_view TarPadding(uint64_t size) {
  static const std::array<char, kTarBlockSize> kZeros{};
  return std::string_view(kZeros.data(), PadOf(size));
}

namespace {

// A NUL-terminated (or full-width) string field.
std::string_view FieldString(std::string_view block, Field f) {
  std::string_view s = block.substr(f.off, f.len);
  return s.substr(0, s.find('\0'));
}

// Octal digits with optional leading spaces and trailing NULs/spaces. nullopt when malformed.
std::optional<uint64_t> ParseOctal(std::string_view block, Field f) {
  std::string_view s = block.substr(f.off, f.len);
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  uint64_t v = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '7'; ++i) {
    if (v > (kMaxValue >> 3)) return std::nullopt;
    v = (v << 3) | static_cast<uint64_t>(s[i] - '0');
  }
  for (; i < s.size(); ++i) {
    if (s[i] != '\0' && s[i] != ' ') return std::nullopt;
  }
  return v;
}

std::optional<uint64_t> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > kMaxValue) return std::nullopt;
  return v;
}

// PAX times may be negative and carry a fraction; we keep whole seconds (toward zero).
std::optional<int64_t> ParsePaxTime(std::string_view s) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  s = s.substr(0, s.find('.'));
  auto v = ParseDecimal(s);
  if (!v) return std::nullopt;
  return neg ? -static_cast<int64_t>(*v) : static_cast<int64_t>(*v);
}

bool IsZeroBlock(std::string_view b) {
  return std::all_of(b.begin(), b.end(), [](char c) { return c == '\0'; });
}

}  // namespace

TarParser::TarParser(uint64_t base_offset) : base_(base_offset) {}

bool TarParser::AtEntryBoundary() const {
  return state_ == State::kHeader && buf_.empty() && !has_pax_path_ && !has_pax_link_ &&
         !has_pax_size_ && !has_pax_mtime_;
}

Status TarParser::Corrupt(const std::string& what, uint64_t at) const {
  return CorruptionError("tar: " + what + " at offset " + std::to_string(base_ + at));
}

Result<TarParser::Step> TarParser::Next(std::string_view in) {
  switch (state_) {
    case State::kHeader:
      return FillHeader(in);
    case State::kPaxData:
      return FillPax(in);
    case State::kData:
      return TakeData(in);
    case State::kPadding:
      return SkipPadding(in);
    case State::kEntryEnd:
      state_ = State::kHeader;
      return Step{Event::kEntryEnd, 0, {}};
  }
  return InternalError("tar: bad parser state");
}

Result<TarParser::Step> TarParser::FillHeader(std::string_view in) {
  if (buf_.empty()) block_start_ = pos_;
  size_t n = std::min(in.size(), kTarBlockSize - buf_.size());
  buf_.append(in.substr(0, n));
  pos_ += n;
  if (buf_.size() < kTarBlockSize) return Step{Event::kNeedMore, n, {}};
  RETURN_IF_ERROR(ParseBlock());
  buf_.clear();
  if (state_ == State::kPaxData) return Step{Event::kNeedMore, n, {}};
  return Step{Event::kHeader, n, {}};
}

Status TarParser::ParseBlock() {
  std::string_view b = buf_;
  if (IsZeroBlock(b)) return Corrupt("unexpected end-of-archive block", block_start_);
  auto stored = ParseOctal(b, kChksum);
  if (!stored || *stored != HeaderChecksum(b)) {
    return Corrupt("bad header checksum", block_start_);
  }
  if (b.substr(kMagic.off, kMagic.len) != kUstarMagic ||
      b.substr(kVersion.off, kVersion.len) != kUstarVersion) {
    return Corrupt("not a POSIX ustar header", block_start_);
  }
  auto size = ParseOctal(b, kSize);
  auto mtime = ParseOctal(b, kMtime);
  auto mode = ParseOctal(b, kMode);
  if (!size || !mtime || !mode) return Corrupt("malformed numeric field", block_start_);
  const char type = b[kTypeflag];
  if (type == kTypePax) {
    if (*size > kMaxPaxHeaderSize) return Corrupt("oversized PAX header", block_start_);
    pax_size_ = *size;
    state_ = State::kPaxData;
    return Status::Ok();
  }
  if (type != kTypeFile && type != kTypeFileOld && type != kTypeSymlink) {
    return Corrupt(std::string("unsupported entry type '") + type + "'", block_start_);
  }
  TarHeader h;
  h.kind = type == kTypeSymlink ? EntryKind::kSymlink : EntryKind::kFile;
  std::string_view prefix = FieldString(b, kPrefix);
  h.name = prefix.empty() ? std::string(FieldString(b, kName))
                          : std::string(prefix) + "/" + std::string(FieldString(b, kName));
  h.link_target = std::string(FieldString(b, kLinkname));
  h.size = *size;
  h.mtime = static_cast<int64_t>(*mtime);
  h.mode = static_cast<uint32_t>(*mode & 07777);
  if (has_pax_path_) h.name = pax_.name;
  if (has_pax_link_) h.link_target = pax_.link_target;
  if (has_pax_size_) h.size = pax_.size;
  if (has_pax_mtime_) h.mtime = pax_.mtime;
  has_pax_path_ = has_pax_link_ = has_pax_size_ = has_pax_mtime_ = false;
  if (h.name.empty()) return Corrupt("empty entry name", block_start_);
  if (h.kind == EntryKind::kSymlink && h.size != 0) {
    return Corrupt("symlink with data", block_start_);
  }
  header_ = std::move(h);
  data_offset_ = pos_;
  remaining_ = header_.size;
  pad_ = PadOf(header_.size);
  state_ = remaining_ > 0 ? State::kData : (pad_ > 0 ? State::kPadding : State::kEntryEnd);
  return Status::Ok();
}

Result<TarParser::Step> TarParser::FillPax(std::string_view in) {
  const uint64_t want = pax_size_ + PadOf(pax_size_);
  size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), want - buf_.size()));
  buf_.append(in.substr(0, n));
  pos_ += n;
  if (buf_.size() < want) return Step{Event::kNeedMore, n, {}};
  Status st = ApplyPax(std::string_view(buf_).substr(0, pax_size_));
  buf_.clear();
  if (!st.ok()) return st;
  state_ = State::kHeader;
  return Step{Event::kNeedMore, n, {}};
}

Status TarParser::ApplyPax(std::string_view recs) {
  const uint64_t start = block_start_ + kTarBlockSize;
  size_t at = 0;
  while (at < recs.size()) {
    std::string_view rest = recs.substr(at);
    size_t sp = rest.find(' ');
    auto len = sp == std::string_view::npos ? std::nullopt : ParseDecimal(rest.substr(0, sp));
    if (!len || *len <= sp + 1 || *len > rest.size() || rest[*len - 1] != '\n') {
      return Corrupt("malformed PAX record", start + at);
    }
    std::string_view kv = rest.substr(sp + 1, *len - sp - 2);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return Corrupt("PAX record without '='", start + at);
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "path") {
      pax_.name = std::string(value);
      has_pax_path_ = true;
    } else if (key == "linkpath") {
      pax_.link_target = std::string(value);
      has_pax_link_ = true;
    } else if (key == "size") {
      auto v = ParseDecimal(value);
      if (!v) return Corrupt("bad PAX size", start + at);
      pax_.size = *v;
      has_pax_size_ = true;
    } else if (key == "mtime") {
      auto v = ParsePaxTime(value);
      if (!v) return Corrupt("bad PAX mtime", start + at);
      pax_.mtime = *v;
      has_pax_mtime_ = true;
    }  // Other keys (atime, uname, comments, ...) do not matter to us.
    at += *len;
  }
  return Status::Ok();
}

Result<TarParser::Step> TarParser::TakeData(std::string_view in) {
  if (in.empty()) return Step{Event::kNeedMore, 0, {}};
  size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), remaining_));
  remaining_ -= n;
  pos_ += n;
  if (remaining_ == 0) state_ = pad_ > 0 ? State::kPadding : State::kEntryEnd;
  return Step{Event::kData, n, in.substr(0, n)};
}

Result<TarParser::Step> TarParser::SkipPadding(std::string_view in) {
  size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), pad_));
  pad_ -= n;
  pos_ += n;
  if (pad_ > 0) return Step{Event::kNeedMore, n, {}};
  state_ = State::kHeader;
  return Step{Event::kEntryEnd, n, {}};
}

}  // namespace cyrsync::snapshot
