// The source spool as the syncer sees it: the mailbox list from mailboxes.db, the metadata paths
// of each folder, and the cheap change check (stats of cyrus.* only; never a message file, never
// a readdir). Thread-compatible.
#pragma once

#include <map>
#include <optional>
#include <string>
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

// Manifest as received from the replica, indexed by path, plus the folders it holds. The stored
// entries keep kind, owner, stat tuples and flags; their path and folder_key are cleared (the
// key is the path), which halves the memory of a 10k-folder manifest.
struct ReplicaView {
  std::map<protocol::WirePath, protocol::ManifestEntry> by_path;
  std::map<std::string, std::string> folder_owner;  // folder key -> owner, kMeta entries only
  void Add(protocol::ManifestEntry e);
};

enum class FolderState { kUnchanged, kChanged, kMissingOnSource };

// Stats cyrus.header and cyrus.index (plus cyrus.expunge for a pre-v12 index) and compares them
// with what the replica installed. Costs two or three stat() calls; nothing else.
FolderState CheckFolder(Env* env, const cyrus::ImapdConf& conf, const Folder& f,
                        const ReplicaView& view);

}  // namespace cyrsync::syncer
