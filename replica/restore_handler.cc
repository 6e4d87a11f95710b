// Restore mode: a folder from a snapshot archive becomes a NEW folder of the server this daemon
// runs beside, while its Cyrus keeps running. The files are staged and installed together, the
// folder is registered with `ctl_mboxlist -u`, checked with `reconstruct`, and its owner's
// quota usage recounted with `quota -f -u`; nothing existing is ever written over. Wire format:
// doc/formats/protocol.md, "Restore service".
#include <map>
#include <random>

#include "common/hash.h"
#include "cyrus/folder.h"
#include "cyrus/header.h"
#include "cyrus/index.h"
#include "cyrus/paths.h"
#include "cyrus/spool_entry.h"
#include "cyrus/tools.h"
#include "replica/session.h"

namespace cyrsync::replica {
namespace {

using protocol::Frame;
using protocol::Transport;
using protocol::WirePath;

constexpr size_t kMaxNameBytes = 490;
constexpr uint64_t kMaxMetaBytes = uint64_t{1} << 30;
constexpr std::string_view kIdAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

// 24 characters as 3.6's own uniqueids; the first a letter, like them.
std::string NewUniqueId() {
  std::random_device rd;
  std::string id(24, 'a');
  for (size_t i = 0; i < id.size(); ++i) id[i] = kIdAlphabet[rd() % (i == 0 ? 26 : 36)];
  return id;
}

WirePath Wire(const cyrus::RootedPath& p) { return {p.root, p.rel}; }

// The new folder must lie below an existing user's INBOX, carry no control characters, '/' or
// empty components, and be free: no real folder of that name.
Result<cyrus::MailboxEntry> CheckNewName(Store& s, const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return InvalidArgumentError("restore target name is empty or too long");
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7F || c == '/') {
      return InvalidArgumentError("restore target name has a control character or '/': " + name);
    }
  }
  if (name.find("..") != std::string::npos || name.back() == '.') {
    return InvalidArgumentError("restore target name has an empty component: " + name);
  }
  cyrus::MailboxEntry probe;
  probe.intname = name;
  const std::string owner = probe.Owner();
  ASSIGN_OR_RETURN(auto list, s.Mailboxes());
  const cyrus::MailboxEntry* inbox = nullptr;
  for (const auto& mb : *list) {
    if (mb.intname == name && mb.IsReal()) {
      return FailedPreconditionError("folder " + name + " already exists; restore into a new name");
    }
    if (!owner.empty() && mb.IsReal() && mb.Owner() == owner &&
        (!inbox || mb.intname.size() < inbox->intname.size())) {
      inbox = &mb;
    }
  }
  if (!inbox || name.rfind(inbox->intname + ".", 0) != 0) {
    return FailedPreconditionError("restore target " + name +
                                   " is not below the INBOX of an existing user");
  }
  return *inbox;
}

struct Restore {
  std::string name, uniqueid;
  cyrus::MailboxEntry inbox;
  std::map<std::string, std::string> meta;  // cyrus.* name -> bytes
  std::optional<cyrus::Folder> folder;      // planned once header and index are in
  cyrus::SpoolFolder entry;
  std::map<uint32_t, cyrus::IndexRecord> records;  // uid -> record, for records with a file
  std::map<uint32_t, StagedFile> messages;
  std::vector<std::string> staged_all;
};

// Rewrites the header for the new name and uniqueid and decides where everything goes.
Status Plan(Store& s, Restore& r) {
  if (!r.meta.count("cyrus.header") || !r.meta.count("cyrus.index")) {
    return CorruptionError("protocol error: a restore needs cyrus.header and cyrus.index first");
  }
  ASSIGN_OR_RETURN(r.meta["cyrus.header"],
                   cyrus::RewriteMailboxHeader(r.meta["cyrus.header"], r.name + "/cyrus.header",
                                               r.name, r.uniqueid));
  ASSIGN_OR_RETURN(auto index, cyrus::ParseIndex(r.meta["cyrus.index"], r.name + "/cyrus.index"));
  for (const auto& rec : index.records) {
    if (rec.HasFile()) r.records[rec.uid] = rec;
  }
  ASSIGN_OR_RETURN(r.entry, cyrus::BuildSpoolFolder(r.name, r.uniqueid, r.meta["cyrus.header"],
                                                    r.meta["cyrus.index"], s.conf()));
  r.entry.mb.partition = r.inbox.partition.empty() ? s.conf().defaultpartition : r.inbox.partition;
  r.folder = cyrus::DescribeFolder(s.conf(), r.entry.mb);
  ASSIGN_OR_RETURN(std::string data, s.Resolve(Wire(r.folder->data_dir), Store::Target::kDir));
  auto ls = s.env()->ListDir(data);
  if (ls.ok() && !ls->empty()) {
    return FailedPreconditionError("the new folder's directory " + data + " is not empty");
  }
  return Status::Ok();
}

const cyrus::RootedPath* MetaDestination(const cyrus::Folder& f, const std::string& name) {
  if (name == "cyrus.header") return &f.header;
  if (name == "cyrus.index") return &f.index;
  for (const auto& p : f.other_meta) {
    if (Basename(p.rel) == name) return &p;
  }
  return nullptr;
}

Status Chown(Store& s, const std::string& path) {
  if (!s.options().owner.set) return Status::Ok();
  return s.env()->Chown(path, s.options().owner.uid, s.options().owner.gid);
}

Status ReceiveMeta(Transport& t, Restore& r, const Frame& f) {
  if (r.folder) return CorruptionError("protocol error: META_FILE after the first message");
  ASSIGN_OR_RETURN(auto sf, protocol::DecodeStateFile(f.payload));
  if (sf.name != "cyrus.header" && sf.name != "cyrus.index" && sf.name != "cyrus.cache" &&
      sf.name != "cyrus.annotations") {
    return InvalidArgumentError("a restore takes no metadata file " + sf.name);
  }
  if (r.meta.count(sf.name)) return CorruptionError("protocol error: " + sf.name + " twice");
  ASSIGN_OR_RETURN(r.meta[sf.name], protocol::ReceiveBodyToString(t, kMaxMetaBytes));
  return Status::Ok();
}

Status ReceiveMessage(Transport& t, Store& s, Restore& r, const Frame& f) {
  if (!r.folder) RETURN_IF_ERROR(Plan(s, r));
  ASSIGN_OR_RETURN(auto mp, protocol::DecodeMessagePut(f.payload));
  auto rec = r.records.find(mp.uid);
  if (rec == r.records.end() || r.messages.count(mp.uid)) {
    return CorruptionError("protocol error: message " + std::to_string(mp.uid) +
                           " is not in the index or came twice");
  }
  const bool archived = rec->second.Archived();
  const cyrus::RootedPath& dir = archived ? r.folder->archive_dir : r.folder->data_dir;
  const WirePath final_path{dir.root, JoinPath(dir.rel, std::to_string(mp.uid) + ".")};
  ASSIGN_OR_RETURN(std::string final_abs, s.Resolve(final_path));
  ASSIGN_OR_RETURN(std::string staged, s.NewStagePath(final_path));
  r.staged_all.push_back(staged);
  ASSIGN_OR_RETURN(auto wf, s.env()->NewWritable(staged, 0600));
  FileSink sink(std::move(wf), FileSink::Hash::kSha1);
  RETURN_IF_ERROR(protocol::ReceiveBody(t, sink, s.options().max_file_size).status());
  RETURN_IF_ERROR(sink.Finish());
  const std::string guid = rec->second.GuidHex();
  if (guid != std::string(40, '0') && sink.Sha1HexDigest() != guid) {
    return CorruptionError("message " + std::to_string(mp.uid) + " does not match its GUID " + guid);
  }
  RETURN_IF_ERROR(Chown(s, staged));
  r.messages[mp.uid] = {staged, final_abs};
  return Status::Ok();
}

// Stages the metadata, then installs messages first and cyrus.index last.
Status Install(Store& s, Restore& r) {
  std::vector<StagedFile> files;
  for (const auto& [uid, m] : r.messages) files.push_back(m);
  std::vector<std::pair<std::string, std::string>> order(r.meta.begin(), r.meta.end());
  std::stable_partition(order.begin(), order.end(),
                        [](const auto& m) { return m.first != "cyrus.index"; });
  for (const auto& [name, bytes] : order) {
    const cyrus::RootedPath* dest = MetaDestination(*r.folder, name);
    if (!dest) return InvalidArgumentError("no place for " + name + " in this server's layout");
    ASSIGN_OR_RETURN(std::string final_abs, s.Resolve(Wire(*dest)));
    ASSIGN_OR_RETURN(std::string staged, s.NewStagePath(Wire(*dest)));
    r.staged_all.push_back(staged);
    RETURN_IF_ERROR(AtomicWriteFile(s.env(), staged, bytes, {.mode = 0600, .owner = s.options().owner}));
    files.push_back({staged, final_abs});
  }
  for (const auto& f : files) RETURN_IF_ERROR(s.EnsureDir(Dirname(f.final)));
  return s.InstallTogether(files);
}

void RemoveInstalled(Store& s, const Restore& r) {
  for (const auto& [uid, m] : r.messages) (void)s.env()->Remove(m.final);
  for (const auto& [name, bytes] : r.meta) {
    const cyrus::RootedPath* dest = MetaDestination(*r.folder, name);
    auto abs = dest ? s.Resolve(Wire(*dest)) : Result<std::string>(NotFoundError(name));
    if (abs.ok()) (void)s.env()->Remove(*abs);
  }
}

Status Register(Store& s, const Restore& r) {
  const std::string json = cyrus::MailboxesJson({r.entry});
  const std::string json_path = JoinPath(s.options().state_dir, "restore-" + r.uniqueid + ".json");
  RETURN_IF_ERROR(AtomicWriteFile(s.env(), json_path, json, {.mode = 0600}));
  Status st = cyrus::UndumpMailboxes(s.env(), s.conf(), s.options().tools, json_path, json);
  (void)s.env()->Remove(json_path);
  return st;
}

Status Commit(Transport& t, Store& s, Restore& r) {
  if (!r.folder) RETURN_IF_ERROR(Plan(s, r));
  std::lock_guard g(s.restore_mutex());
  RETURN_IF_ERROR(CheckNewName(s, r.name).status());  // again: another restore may have taken it
  RETURN_IF_ERROR(Install(s, r));
  if (Status st = Register(s, r); !st.ok()) {
    RemoveInstalled(s, r);
    return st;
  }
  ASSIGN_OR_RETURN(std::string out, cyrus::ReconstructFolder(s.options().tools, r.name));
  s.log().info("folder restored mailbox={} uniqueid={} messages={} reconstruct=\"{}\"", r.name,
               r.uniqueid, r.messages.size(), out.substr(0, 400));
  // The restored messages count against the owner's quota from now on.
  if (Status st = cyrus::FixUserQuota(s.options().tools, r.inbox.Owner()); !st.ok()) {
    return st.WithContext("folder " + r.name + " is restored, but its owner's quota usage was "
                          "not recounted");
  }
  return t.Send(protocol::kRestoreDone,
                protocol::Encode(protocol::RestoreDone{r.uniqueid,
                                                       static_cast<uint32_t>(r.messages.size())}));
}

Status Exchange(Transport& t, Store& s, Restore& r) {
  while (true) {
    ASSIGN_OR_RETURN(Frame f, t.Receive());
    if (f.type == protocol::kMetaFile) {
      RETURN_IF_ERROR(ReceiveMeta(t, r, f));
    } else if (f.type == protocol::kMessagePut) {
      RETURN_IF_ERROR(ReceiveMessage(t, s, r, f));
    } else if (f.type == protocol::kFolderCommit) {
      return Commit(t, s, r);
    } else {
      return CorruptionError("protocol error: unexpected type " + std::to_string(f.type) +
                             " inside a restore");
    }
  }
}

}  // namespace

Status HandleRestoreBegin(Transport& t, Store& s, const Frame& f) {
  Restore r;
  ASSIGN_OR_RETURN(r.name, protocol::DecodeString(f.payload));
  ASSIGN_OR_RETURN(r.inbox, CheckNewName(s, r.name));
  r.uniqueid = NewUniqueId();
  RETURN_IF_ERROR(t.Send(protocol::kOk, ""));
  Status st = Exchange(t, s, r);
  for (const auto& p : r.staged_all) (void)s.env()->Remove(p);  // gone when installed
  return st;
}

}  // namespace cyrsync::replica
