#include "syncer/walk.h"

#include <set>

namespace cyrsync::syncer {
namespace {

// Entries are looked at as readdir returns them (a million message names are counted, not
// collected); subdirectories are descended into once this directory is closed.
void WalkDir(Env* env, const std::string& dir, WalkStats* s) {
  std::vector<std::string> subdirs;
  bool folder = false;
  Status st = env->ScanDir(dir, [&](std::string_view name, EntryType type) {
    if (name.empty() || name[0] == '.') return;
    if (cyrus::IsMessageFileName(name)) {
      ++s->message_files;
    } else if (name == "cyrus.header") {
      folder = true;
    } else if (type == EntryType::kDir && !cyrus::IsMetaFileName(name)) {
      subdirs.emplace_back(name);
    }
  });
  if (!st.ok()) {
    if (st.code() == Code::kNotFound) ++s->vanished;
    return;
  }
  ++s->dirs;
  if (folder) s->folder_dirs.push_back(dir);
  for (const auto& sub : subdirs) WalkDir(env, JoinPath(dir, sub), s);
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

uint64_t ReportUnlistedFolders(const cyrus::ImapdConf& conf, const WalkStats& walked,
                               const std::vector<const cyrus::MailboxEntry*>& listed,
                               spdlog::logger& log) {
  std::set<std::string> known;
  for (const auto* mb : listed) {
    auto h = cyrus::Resolve(conf, DescribeFolder(conf, *mb).header);
    if (h.ok()) known.insert(Dirname(*h));
  }
  uint64_t unlisted = 0;
  for (const auto& d : walked.folder_dirs) {
    if (known.count(d)) continue;
    ++unlisted;
    log.warn("folder on disk not listed in mailboxes.db dir={}", d);
  }
  return unlisted;
}

}  // namespace cyrsync::syncer
