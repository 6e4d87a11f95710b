#include "snapshot/archive_internal.h"

namespace cyrsync::snapshot::internal {
namespace {

// Compressed bytes are handed to the file in pieces of about this size, not per entry.
constexpr size_t kWriteChunk = size_t{1} << 20;
constexpr uint32_t kSymlinkMode = 0777;

}  // namespace

Status ValidateEntryName(std::string_view name) {
  auto bad = [&](const char* why) {
    return InvalidArgumentError("archive entry name \"" + std::string(name) + "\": " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.size() > kMaxNameSize) return bad("too long");
  if (name.find('\0') != std::string_view::npos) return bad("contains NUL");
  if (name.front() == '/' || name.back() == '/') return bad("leading or trailing '/'");
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view comp = name.substr(start, slash - start);
    if (comp.empty() || comp == "." || comp == "..") return bad("empty, '.' or '..' component");
    start = slash + 1;
  }
  return Status::Ok();
}

Result<std::unique_ptr<ArchiveAppender>> ArchiveAppender::Create(std::unique_ptr<WritableFile> file,
                                                                 uint64_t start,
                                                                 const WriterOptions& opts) {
  if (opts.member_target == 0) return InvalidArgumentError("archive: member_target is 0");
  ASSIGN_OR_RETURN(auto d, MemberDeflater::Create(opts.compression_level));
  return std::unique_ptr<ArchiveAppender>(
      new ArchiveAppender(std::move(file), std::move(d), start, opts));
}

ArchiveAppender::ArchiveAppender(std::unique_ptr<WritableFile> file,
                                 std::unique_ptr<MemberDeflater> d, uint64_t start,
                                 const WriterOptions& opts)
    : file_(std::move(file)), deflater_(std::move(d)), opts_(opts), written_(start), end_(start) {}

Status ArchiveAppender::WriteOut() {
  std::string out = deflater_->TakeOutput();
  if (out.empty()) return Status::Ok();
  RETURN_IF_ERROR(file_->Append(out));
  written_ += out.size();
  return Status::Ok();
}

Status ArchiveAppender::Feed(std::string_view bytes) {
  RETURN_IF_ERROR(deflater_->Add(bytes));
  if (deflater_->pending_output() >= kWriteChunk) return WriteOut();
  return Status::Ok();
}

namespace {

// Caller mistakes are reported before anything is written, so they do not poison the appender.
Status CheckEntry(const Entry& e, std::string_view data) {
  RETURN_IF_ERROR(ValidateEntryName(e.name));
  if (e.kind != EntryKind::kSymlink) return Status::Ok();
  if (!data.empty()) return InvalidArgumentError("archive: symlink with data: " + e.name);
  if (e.link_target.empty() || e.link_target.find('\0') != std::string::npos) {
    return InvalidArgumentError("archive: symlink target empty or with NUL: " + e.name);
  }
  return Status::Ok();
}

}  // namespace

Status ArchiveAppender::Add(const Entry& e, std::string_view data) {
  RETURN_IF_ERROR(status_);
  RETURN_IF_ERROR(CheckEntry(e, data));
  status_ = AddEntry(e, data);
  return status_;
}

Status ArchiveAppender::AddEntry(const Entry& in, std::string_view data) {
  const bool link = in.kind == EntryKind::kSymlink;
  Entry e = in;
  e.mode = link ? kSymlinkMode : (e.mode & 07777);
  if (!link) e.link_target.clear();
  TarHeader h{e.name, e.kind, e.link_target, data.size(), e.mtime, e.mode};
  ASSIGN_OR_RETURN(std::string header, EncodeTarHeader(h));
  if (member_open_ && deflater_->total_in() >= opts_.member_target) {
    RETURN_IF_ERROR(FinishMember());
  }
  if (!member_open_) {
    member_open_ = true;
    member_first_ = entries_.size();
  }
  e.loc = EntryLocation{end_, 0, deflater_->total_in() + header.size(), data.size()};
  if (link) {
    e.sha1.clear();
  } else if (e.sha1.empty()) {
    e.sha1 = Sha1Hex(data);
  }
  RETURN_IF_ERROR(Feed(header));
  RETURN_IF_ERROR(Feed(data));
  RETURN_IF_ERROR(Feed(TarPadding(data.size())));
  entries_.push_back(std::move(e));
  return Status::Ok();
}

Status ArchiveAppender::FinishMember() {
  if (!member_open_) return Status::Ok();
  RETURN_IF_ERROR(deflater_->Finish());
  RETURN_IF_ERROR(WriteOut());
  for (size_t i = member_first_; i < entries_.size(); ++i) {
    entries_[i].loc.member_length = written_ - end_;
  }
  end_ = written_;
  member_open_ = false;
  return deflater_->Reset();
}

Status ArchiveAppender::EndMember() {
  RETURN_IF_ERROR(status_);
  status_ = FinishMember();
  return status_;
}

Status ArchiveAppender::Sync() {
  RETURN_IF_ERROR(EndMember());
  status_ = file_->Sync();
  return status_;
}

Status ArchiveAppender::Close() { return file_->Close(); }

}  // namespace cyrsync::snapshot::internal
