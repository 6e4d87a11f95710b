// The source spool as the syncer sees it: the mailbox list from mailboxes.db, the metadata paths
// of each folder, and the cheap change check (stats of cyrus.* only; never a message file, never
// a readdir). Thread-compatible.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/env.h"
#include "cyrus/config.h"
#include "cyrus/folder.h"
#include "cyrus/mboxlist.h"
#include "cyrus/paths.h"
#include "protocol/messages.h"

namespace cyrsync::syncer {

protocol::WirePath ToWire(const cyrus::RootedPath& p);
protocol::StatTuple ToTuple(const FileStat& st);

using Folder = cyrus::Folder;
using cyrus::DescribeFolder;

// Manifest as received from the replica, indexed by path, plus the folders it holds. Only what
// the pass compares is kept per entry (30k entries at 10k folders).
struct ReplicaEntry {
  protocol::EntryKind kind = protocol::EntryKind::kFile;
  bool unsettled = false;
  uint32_t index_minor = 0;
  protocol::StatTuple source;
  std::string owner;
};

struct WirePathHash {
  size_t operator()(const protocol::WirePath& p) const {
    return std::hash<std::string>()(p.rel) * 31 + std::hash<std::string>()(p.root);
  }
};

// Hashed: every pass looks up each selected folder's files here (at 10k folders the ordered
// map's string comparisons of long common prefixes were a tenth of the syncer's CPU).
struct ReplicaView {
  std::unordered_map<protocol::WirePath, ReplicaEntry, WirePathHash> by_path;
  std::unordered_map<std::string, std::string> folder_owner;  // folder key -> owner, kMeta only
  void Add(protocol::ManifestEntry e);
};

enum class FolderState { kUnchanged, kChanged, kMissingOnSource };

// The stats of a folder's cyrus.index and cyrus.header, taken before the replica's manifest is
// at hand (the syncer stats while the replica validates its manifest). nullopt: absent.
struct SourceStats {
  protocol::WirePath index_path, header_path;
  std::optional<protocol::StatTuple> index, header;
};
SourceStats StatFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f);
SourceStats StatFolder(Env* env, const cyrus::ImapdConf& conf, const cyrus::RootedPath& index,
                       const cyrus::RootedPath& header);

// Compares the stats with what the replica installed; for a pre-v12 index also stats
// cyrus.expunge (expunge_path computes it only then).
FolderState CompareFolder(Env* env, const cyrus::ImapdConf& conf, const SourceStats& st,
                          const std::function<cyrus::RootedPath()>& expunge_path,
                          const ReplicaView& view);

// StatFolder + CompareFolder: two or three stat() calls; nothing else.
FolderState CheckFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f,
                        const ReplicaView& view);

}  // namespace cyrsync::syncer
