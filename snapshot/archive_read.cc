// Reading the archive: the member walker, ReadEntry and ScanArchive.
#include <algorithm>

#include "snapshot/archive_internal.h"
#include "snapshot/run_marker.h"

namespace cyrsync::snapshot {
namespace internal {
namespace {

std::string MemberContext(uint64_t offset) {
  return "gzip member at offset " + std::to_string(offset);
}

// Feeds one chunk of a member's uncompressed stream through the tar parser to the visitor.
Status FeedParser(TarParser* parser, std::string_view out, uint64_t member_offset,
                  ArchiveVisitor* v) {
  while (true) {
    auto step = parser->Next(out);
    if (!step.ok()) return step.error().WithContext(MemberContext(member_offset));
    out.remove_prefix(step->consumed);
    switch (step->event) {
      case TarParser::Event::kNeedMore:
        if (out.empty()) return Status::Ok();
        break;
      case TarParser::Event::kHeader: {
        const TarHeader& h = parser->header();
        RETURN_IF_ERROR(v->OnEntry(h, {member_offset, 0, parser->data_offset(), h.size}));
        break;
      }
      case TarParser::Event::kData:
        RETURN_IF_ERROR(v->OnData(step->data));
        break;
      case TarParser::Event::kEntryEnd:
        RETURN_IF_ERROR(v->OnEntryEnd());
        break;
    }
  }
}

// One member: inflate it through a fresh tar parser; it must end at an entry boundary.
MemberOutcome WalkMember(FileCursor* cur, MemberInflater* inflater, ArchiveVisitor* v) {
  const uint64_t offset = cur->offset();
  TarParser parser;
  MemberOutcome m = InflateMember(cur, inflater, [&](std::string_view out) -> Result<SinkAction> {
    RETURN_IF_ERROR(FeedParser(&parser, out, offset, v));
    return SinkAction::kContinue;
  });
  if (!m.status.ok()) return m;
  // A member whose stream ends exactly after an entry's data still owes that entry's end.
  m.status = FeedParser(&parser, {}, offset, v);
  if (m.status.ok() && !parser.AtEntryBoundary()) {
    m.status = CorruptionError(MemberContext(offset) + ": tar entry \"" + parser.header().name +
                               "\" incomplete at the end of the member");
  }
  if (m.status.ok()) m.status = v->OnMemberEnd(offset, m.length);
  return m;
}

}  // namespace

WalkEnd WalkArchive(ReadableFile* file, uint64_t start, uint64_t limit, ArchiveVisitor* v) {
  WalkEnd end;
  end.offset = start;
  auto inflater = MemberInflater::Create();
  if (!inflater.ok()) {
    end.status = inflater.error();
    return end;
  }
  FileCursor cur(file, start, limit);
  while (true) {
    auto in = cur.Peek();
    if (!in.ok()) {
      end.status = in.error();
      return end;
    }
    if (in->empty()) return end;
    MemberOutcome m = WalkMember(&cur, inflater->get(), v);
    if (!m.status.ok()) {
      end.status = m.status;
      end.truncated = m.truncated;
      return end;
    }
    end.offset = cur.offset();
    ++end.members;
  }
}

bool IsMarker(const Entry& e) { return ParseMarkerName(e.name).has_value(); }

Status MemberCollector::OnEntry(const TarHeader& h, const EntryLocation& loc) {
  ScannedEntry se;
  se.entry.name = h.name;
  se.entry.kind = h.kind;
  se.entry.link_target = h.link_target;
  se.entry.mtime = h.mtime;
  se.entry.mode = h.mode;
  se.entry.loc = loc;
  if (auto m = ParseMarkerName(h.name); m && !m->end) run_id_ = m->run_id;
  se.entry.run_id = run_id_;
  capturing_ = capture_ && capture_(se.entry);
  hasher_.reset(h.kind == EntryKind::kFile ? new Sha1Hasher() : nullptr);
  pending_.push_back(std::move(se));
  return Status::Ok();
}

Status MemberCollector::OnData(std::string_view chunk) {
  if (hasher_) hasher_->Update(chunk);
  if (capturing_) pending_.back().data.append(chunk);
  return Status::Ok();
}

Status MemberCollector::OnEntryEnd() {
  if (!hasher_) return Status::Ok();
  pending_.back().entry.sha1 = HexEncode(hasher_->Finish());
  hasher_.reset();
  return Status::Ok();
}

Status MemberCollector::OnMemberEnd(uint64_t offset, uint64_t length) {
  for (ScannedEntry& se : pending_) se.entry.loc.member_length = length;
  std::vector<ScannedEntry> member;
  member.swap(pending_);
  return on_member_ ? on_member_(member) : Status::Ok();
}

Result<uint64_t> ArchiveSize(Env* env, const std::string& path) {
  auto st = env->Stat(path);
  if (!st.ok()) {
    if (st.error().code() == Code::kNotFound) return uint64_t{0};
    return st.error();
  }
  return st->size;
}

}  // namespace internal

namespace {

constexpr size_t kMaxReserve = size_t{64} << 20;

// Finds the entry whose data starts at e.loc.data_offset in its member and collects its data.
class EntryExtractor {
 public:
  explicit EntryExtractor(const Entry& e) : e_(e) {
    if (e.kind == EntryKind::kFile) data_.reserve(std::min<uint64_t>(e.loc.size, kMaxReserve));
  }
  Result<SinkAction> Feed(std::string_view out);
  bool done() const { return done_; }
  std::string& data() { return data_; }
  const TarHeader& header() const { return parser_.header(); }

 private:
  Status OnHeader();
  const Entry& e_;
  TarParser parser_;
  bool found_ = false, done_ = false;
  std::string data_;
};

Status EntryExtractor::OnHeader() {
  const uint64_t at = parser_.data_offset();
  if (at < e_.loc.data_offset) return Status::Ok();
  const TarHeader& h = parser_.header();
  if (at > e_.loc.data_offset || h.name != e_.name || h.kind != e_.kind || h.size != e_.loc.size) {
    return CorruptionError("no entry \"" + e_.name + "\" at data offset " +
                           std::to_string(e_.loc.data_offset) + " of the gzip member at offset " +
                           std::to_string(e_.loc.member_offset) + " (found \"" + h.name + "\" at " +
                           std::to_string(at) + ")");
  }
  found_ = true;
  return Status::Ok();
}

Result<SinkAction> EntryExtractor::Feed(std::string_view out) {
  while (!done_) {
    ASSIGN_OR_RETURN(TarParser::Step step, parser_.Next(out));
    out.remove_prefix(step.consumed);
    switch (step.event) {
      case TarParser::Event::kNeedMore:
        if (out.empty()) return SinkAction::kContinue;
        break;
      case TarParser::Event::kHeader:
        RETURN_IF_ERROR(OnHeader());
        break;
      case TarParser::Event::kData:
        if (found_) data_.append(step.data);
        break;
      case TarParser::Event::kEntryEnd:
        done_ = found_;
        break;
    }
  }
  return SinkAction::kStop;
}

Status CheckExtracted(const Entry& e, const TarHeader& h, const std::string& data) {
  if (e.kind == EntryKind::kSymlink) {
    if (!e.link_target.empty() && h.link_target != e.link_target) {
      return CorruptionError("symlink " + e.name + " points to \"" + h.link_target +
                             "\", the index says \"" + e.link_target + "\"");
    }
    return Status::Ok();
  }
  if (!e.sha1.empty() && Sha1Hex(data) != e.sha1) {
    return CorruptionError("sha1 mismatch for " + e.name + " in the gzip member at offset " +
                           std::to_string(e.loc.member_offset));
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> ReadEntry(Env* env, const std::string& archive_path, const Entry& e) {
  auto ctx = [&](const Status& s) { return s.WithContext("archive " + archive_path); };
  ASSIGN_OR_RETURN(auto file, env->OpenRead(archive_path));
  const uint64_t len = e.loc.member_length;
  FileCursor cur(file.get(), e.loc.member_offset,
                 len > 0 ? e.loc.member_offset + len : FileCursor::kNoLimit,
                 len > 0 ? static_cast<size_t>(std::min<uint64_t>(len, 256 << 10)) : 256 << 10);
  ASSIGN_OR_RETURN(auto inflater, MemberInflater::Create());
  EntryExtractor x(e);
  MemberOutcome m =
      InflateMember(&cur, inflater.get(), [&](std::string_view out) { return x.Feed(out); });
  if (!m.status.ok()) return ctx(m.status);
  if (!x.done()) {
    return ctx(CorruptionError("entry \"" + e.name + "\" not found in the gzip member at offset " +
                               std::to_string(e.loc.member_offset)));
  }
  RETURN_IF_ERROR(ctx(CheckExtracted(e, x.header(), x.data())));
  if (e.kind == EntryKind::kSymlink) return x.header().link_target;
  return std::move(x.data());
}

Status ScanArchive(Env* env, const std::string& archive_path,
                   const std::function<Status(const Entry&)>& fn) {
  ASSIGN_OR_RETURN(auto file, env->OpenRead(archive_path));
  internal::MemberCollector collector(nullptr, [&](std::vector<internal::ScannedEntry>& m) {
    for (const internal::ScannedEntry& se : m) RETURN_IF_ERROR(fn(se.entry));
    return Status::Ok();
  });
  internal::WalkEnd end = internal::WalkArchive(file.get(), 0, FileCursor::kNoLimit, &collector);
  if (end.status.code() == Code::kCorruption) {
    return end.status.WithContext("archive " + archive_path);
  }
  return end.status;
}

}  // namespace cyrsync::snapshot
