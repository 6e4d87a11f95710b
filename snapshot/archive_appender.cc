#include <system_error>

#include "snapshot/archive_internal.h"

namespace cyrsync::snapshot::internal {
namespace {

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
                                                                 const WriterOptions& opts,
                                                                 MemberSink sink) {
  if (opts.member_target == 0) return InvalidArgumentError("archive: member_target is 0");
  ASSIGN_OR_RETURN(auto d, MemberDeflater::Create(opts.compression_level));
  ASSIGN_OR_RETURN(auto spare, MemberDeflater::Create(opts.compression_level));
  return std::unique_ptr<ArchiveAppender>(
      new ArchiveAppender(std::move(file), std::move(d), std::move(spare), start, opts,
                          std::move(sink)));
}

ArchiveAppender::ArchiveAppender(std::unique_ptr<WritableFile> file,
                                 std::unique_ptr<MemberDeflater> d,
                                 std::unique_ptr<MemberDeflater> spare, uint64_t start,
                                 const WriterOptions& opts, MemberSink sink)
    : file_(std::move(file)),
      deflater_(std::move(d)),
      spare_(std::move(spare)),
      opts_(opts),
      end_(start),
      sink_(std::move(sink)) {}

// The background compression uses the pending deflater: it must end before that is destroyed.
ArchiveAppender::~ArchiveAppender() {
  if (pending_ && pending_->compressed.valid()) pending_->compressed.wait();
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
    RETURN_IF_ERROR(CutMember());
  }
  if (!member_open_) {
    member_open_ = true;
    member_first_ = written_ + entries_.size();
  }
  // member_offset and member_length are filled in when the member is written.
  e.loc = EntryLocation{0, 0, deflater_->total_in() + header.size(), data.size()};
  if (link) {
    e.sha1.clear();
  } else if (e.sha1.empty()) {
    e.sha1 = Sha1Hex(data);
  }
  RETURN_IF_ERROR(deflater_->Add(header));
  RETURN_IF_ERROR(deflater_->Add(data));
  RETURN_IF_ERROR(deflater_->Add(TarPadding(data.size())));
  entries_.push_back(std::move(e));
  return Status::Ok();
}

// Appends a compressed member, records where its entries [first, last) are and hands them to
// the sink. Members are written in order, so they are the oldest entries held.
Status ArchiveAppender::WriteMember(MemberDeflater* d, size_t first, size_t last) {
  if (first != written_ || last - first > entries_.size()) {
    return InternalError("archive: member entries out of order");
  }
  std::string out = d->TakeOutput();
  RETURN_IF_ERROR(file_->Append(out));
  const auto split = entries_.begin() + static_cast<std::ptrdiff_t>(last - first);
  std::vector<Entry> done(std::make_move_iterator(entries_.begin()),
                          std::make_move_iterator(split));
  entries_.erase(entries_.begin(), split);
  written_ = last;
  for (Entry& e : done) {
    e.loc.member_offset = end_;
    e.loc.member_length = out.size();
  }
  end_ += out.size();
  RETURN_IF_ERROR(d->Reset());
  return sink_ ? sink_(std::move(done)) : Status::Ok();
}

// Waits for the member being compressed in the background and writes it.
Status ArchiveAppender::CollectPending() {
  if (!pending_) return Status::Ok();
  Pending p = std::move(*pending_);
  pending_.reset();
  RETURN_IF_ERROR(p.compressed.get());
  RETURN_IF_ERROR(WriteMember(p.deflater.get(), p.first, p.last));
  spare_ = std::move(p.deflater);
  return Status::Ok();
}

// Ends the open member at member_target: it is compressed in the background while the next
// one fills. At most one member is in flight, so the input buffered stays about two members.
Status ArchiveAppender::CutMember() {
  RETURN_IF_ERROR(CollectPending());
  Pending p{std::move(deflater_), {}, member_first_, written_ + entries_.size()};
  deflater_ = std::move(spare_);
  member_open_ = false;
  MemberDeflater* d = p.deflater.get();
  try {
    p.compressed = std::async(std::launch::async, [d] { return d->Finish(); });
  } catch (const std::system_error&) {
    // No thread to be had: compress here instead.
    std::promise<Status> done;
    done.set_value(d->Finish());
    p.compressed = done.get_future();
  }
  pending_ = std::move(p);
  return Status::Ok();
}

Status ArchiveAppender::FinishMember() {
  RETURN_IF_ERROR(CollectPending());
  if (!member_open_) return Status::Ok();
  RETURN_IF_ERROR(deflater_->Finish());
  RETURN_IF_ERROR(WriteMember(deflater_.get(), member_first_, written_ + entries_.size()));
  member_open_ = false;
  return Status::Ok();
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
