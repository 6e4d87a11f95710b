// The source spool as the syncer sees it: the mailbox list from mailboxes.db, the metadata paths
// of each folder, and the cheap change check (stats of cyrus.* only; never a message file, never
// a readdir). Thread-compatible.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/env.h"
#include "cyrus/config.h"
#include "cyrus/folder.h"
#include "cyrus/mboxlist.h"
#include "cyrus/paths.h"
#include "protocol/messages.h"
#include "syncer/replica_view.h"

namespace cyrsync::syncer {

protocol::WirePath ToWire(const cyrus::RootedPath& p);
protocol::StatTuple ToTuple(const FileStat& st);

using Folder = cyrus::Folder;
using cyrus::DescribeFolder;

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

// StatFolder for many folders at once, on up to `threads` threads. Each element's index_path and
// header_path are set; this fills index and header. Folders whose meta directories share a parent
// (a hash directory of the UUID layout, a user's directory of the legacy one) share one walk of
// that parent's path: at 10k folders the path walks were most of an unchanged pass.
void StatFolders(Env* env, const cyrus::ImapdConf& conf, std::span<SourceStats* const> folders,
                 int threads);

// Compares the stats with what the replica installed; for a pre-v12 index also stats
// cyrus.expunge (expunge_path computes it only then).
FolderState CompareFolder(Env* env, const cyrus::ImapdConf& conf, const SourceStats& st,
                          const std::function<cyrus::RootedPath()>& expunge_path,
                          const ReplicaView& view);

// StatFolder + CompareFolder: two or three stat() calls; nothing else.
FolderState CheckFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f,
                        const ReplicaView& view);

}  // namespace cyrsync::syncer
