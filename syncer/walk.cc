#include "syncer/walk.h"

#include <set>

namespace cyrsync::syncer {
namespace {

void WalkDir(Env* env, const std::string& dir, WalkStats* s) {
  auto ls = env->ListDir(dir);
  if (!ls.ok()) {
    if (ls.error().code() == Code::kNotFound) ++s->vanished;
    return;
  }
  ++s->dirs;
  for (const auto& e : *ls) {
    if (e.name.empty() || e.name[0] == '.') continue;
    if (cyrus::IsMessageFileName(e.name)) {
      ++s->message_files;
    } else if (e.name == "cyrus.header") {
      s->folder_dirs.push_back(dir);
    } else if (e.type == EntryType::kDir && !cyrus::IsMetaFileName(e.name)) {
      WalkDir(env, JoinPath(dir, e.name), s);
    }
  }
}

}  // namespace

WalkStats WalkSpool(Env* env, const cyrus::ImapdConf& conf) {
  WalkStats s;
  std::set<std::string> roots;
  for (const auto& [n, d] : conf.partitions) roots.insert(d);
  for (const auto& [n, d] : conf.metapartitions) roots.insert(d);
  for (const auto& r : roots) WalkDir(env, r, &s);
  return s;
}

uint64_t ReportUnlistedFolders(Env* env, const cyrus::ImapdConf& conf,
                               const std::vector<const cyrus::MailboxEntry*>& listed,
                               spdlog::logger& log) {
  std::set<std::string> known;
  for (const auto* mb : listed) {
    auto h = cyrus::Resolve(conf, DescribeFolder(conf, *mb).header);
    if (h.ok()) known.insert(Dirname(*h));
  }
  WalkStats s = WalkSpool(env, conf);
  uint64_t unlisted = 0;
  for (const auto& d : s.folder_dirs) {
    if (known.count(d)) continue;
    ++unlisted;
    log.warn("folder on disk not listed in mailboxes.db dir={}", d);
  }
  return unlisted;
}

}  // namespace cyrsync::syncer
