#include "snapshot/restore_live.h"

#include "cyrus/index.h"
#include "snapshot/guid_map.h"

namespace cyrsync::snapshot {
namespace {

// The daemon writes these; cyrus.expunge (pre-v12) is not restorable into a 3.x server's new
// folder and is left out.
bool Sent(const std::string& name) {
  return name == "cyrus.header" || name == "cyrus.index" || name == "cyrus.cache" ||
         name == "cyrus.annotations";
}

class LiveRestorer {
 public:
  LiveRestorer(Env* env, protocol::Transport& t, const LiveRestoreRequest& req, IndexDb& idx)
      : env_(env), t_(t), req_(req), idx_(idx) {}

  Status Hello() {
    protocol::Hello h;
    h.mode = "restore";
    RETURN_IF_ERROR(t_.Send(protocol::kHello, protocol::Encode(h)));
    return protocol::ReceiveExpect(t_, protocol::kHelloOk).status();
  }

  Status Folder(const std::string& key, const std::string& target) {
    ASSIGN_OR_RETURN(auto meta, ArchivedFolderMeta(idx_, key, req_.from.as_of));
    ASSIGN_OR_RETURN(std::string index_bytes, Read(meta.at("cyrus.index")));
    ASSIGN_OR_RETURN(auto index, cyrus::ParseIndex(index_bytes, key + "/cyrus.index"));
    ASSIGN_OR_RETURN(GuidMap map,
                     LoadGuidMap(env_, idx_, req_.from.paths.archive, key, req_.from.as_of));
    std::vector<const cyrus::IndexRecord*> records;
    for (const auto& r : index.records) {
      if (r.HasFile() && (req_.from.uid == 0 || r.uid == req_.from.uid)) records.push_back(&r);
    }
    if (req_.from.uid != 0 && records.empty()) {
      return NotFoundError("uid " + std::to_string(req_.from.uid) + " is not in " +
                           req_.from.folder);
    }
    RETURN_IF_ERROR(t_.Send(protocol::kRestoreBegin, protocol::EncodeString(target)));
    RETURN_IF_ERROR(protocol::ExpectOk(t_));
    for (const auto& [name, e] : meta) {
      if (!Sent(name)) continue;
      ASSIGN_OR_RETURN(std::string bytes, name == "cyrus.index" ? index_bytes : Read(e));
      RETURN_IF_ERROR(t_.Send(protocol::kMetaFile, protocol::Encode(protocol::StateFile{name})));
      RETURN_IF_ERROR(protocol::SendBody(t_, bytes));
    }
    for (const cyrus::IndexRecord* r : records) RETURN_IF_ERROR(Message(*r, map));
    RETURN_IF_ERROR(t_.Send(protocol::kFolderCommit, ""));
    ASSIGN_OR_RETURN(auto done, protocol::ReceiveExpect(t_, protocol::kRestoreDone));
    ASSIGN_OR_RETURN(auto d, protocol::DecodeRestoreDone(done.payload));
    result_.created.emplace_back(target, d.uniqueid);
    ++result_.stats.folders;
    return Status::Ok();
  }

  LiveRestoreResult& result() { return result_; }

 private:
  Result<std::string> Read(const Entry& e) { return ReadEntry(env_, req_.from.paths.archive, e); }

  // A message the archive lacks (its run failed underfoot) is skipped and counted: reconstruct
  // drops its record.
  Status Message(const cyrus::IndexRecord& r, const GuidMap& map) {
    ASSIGN_OR_RETURN(auto e, ArchivedBody(idx_, r, map, req_.from.as_of));
    if (!e) {
      ++result_.stats.missing;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(std::string body, Read(*e));
    RETURN_IF_ERROR(t_.Send(protocol::kMessagePut,
                            protocol::Encode(protocol::MessagePut{r.uid, r.Archived(), body.size()})));
    RETURN_IF_ERROR(protocol::SendBody(t_, body));
    ++result_.stats.messages;
    result_.stats.bytes += body.size();
    return Status::Ok();
  }

  Env* env_;
  protocol::Transport& t_;
  const LiveRestoreRequest& req_;
  IndexDb& idx_;
  LiveRestoreResult result_;
};

// user.alice -> target, user.alice.X -> target.X; for one folder: target.
std::vector<std::pair<std::string, std::string>> Targets(
    const LiveRestoreRequest& req, const std::map<std::string, std::string>& folders) {
  std::vector<std::pair<std::string, std::string>> out;  // (archive key, new name)
  if (!req.from.folder.empty()) {
    auto it = folders.find(req.from.folder);
    if (it != folders.end()) out.emplace_back(it->second, req.target);
    return out;
  }
  std::string inbox;
  for (const auto& [name, key] : folders) {
    if (inbox.empty() || name.size() < inbox.size()) inbox = name;
  }
  for (const auto& [name, key] : folders) {
    if (name == inbox) {
      out.emplace_back(key, req.target);
    } else if (name.rfind(inbox + ".", 0) == 0) {
      out.emplace_back(key, req.target + name.substr(inbox.size()));
    }
  }
  return out;
}

}  // namespace

Result<LiveRestoreResult> RestoreIntoLiveServer(Env* env, protocol::Transport& t,
                                                const LiveRestoreRequest& req) {
  if (req.target.empty()) return InvalidArgumentError("a restore into a server needs --as NAME");
  ASSIGN_OR_RETURN(auto idx, OpenIndexForArchive(env, req.from.paths.archive, req.from.paths.index));
  ASSIGN_OR_RETURN(auto folders, ArchivedFolders(*idx, req.from.as_of));
  auto targets = Targets(req, folders);
  if (!req.from.folder.empty() && targets.empty()) {
    return FolderNotArchived(req.from.folder, req.from.as_of);
  }
  LiveRestorer r(env, t, req, *idx);
  RETURN_IF_ERROR(r.Hello());
  for (const auto& [key, target] : targets) {
    Status st = r.Folder(key, target);
    if (st.ok()) continue;
    std::string made;
    for (const auto& [name, id] : r.result().created) made += " " + name;
    return st.WithContext(made.empty() ? "restore into " + target
                                       : "restore into " + target + " (already created:" + made + ")");
  }
  return r.result();
}

}  // namespace cyrsync::snapshot
