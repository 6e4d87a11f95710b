// Where Cyrus keeps a mailbox's files, per layout and option (cyrus-formats.md §2, §11): spool
// and archive directories, metadata files on metapartitions, per-user files under
// configdirectory and sievedir, quota files, and lock files.
//
// Every path is returned as a RootedPath: a root id naming an imapd.conf key plus a path
// relative to that root. Master and replica resolve the same RootedPath through their own
// imapd.conf, so the two may keep their trees in different places.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cyrus/config.h"
#include "cyrus/mboxlist.h"

namespace cyrsync::cyrus {

struct RootedPath {
  std::string root;  // "configdirectory", "sievedir", "partition-<p>", "metapartition-<p>",
                     // "archivepartition-<p>", "metadir-<file>-<p>"
  std::string rel;   // relative, no leading '/', never ".." components
  bool operator==(const RootedPath&) const = default;
  bool operator<(const RootedPath& o) const {
    return root != o.root ? root < o.root : rel < o.rel;
  }
};

// Resolves to an absolute path through conf; kNotFound if conf lacks the root.
Result<std::string> Resolve(const ImapdConf& conf, const RootedPath& p);

// dir_hash_c: basic (first byte lower-cased, 'q' if not a-z) or fulldirhash.
char DirHashChar(std::string_view name, bool full);

// The metadata files cyrsync copies for a mailbox, in Cyrus's own file names.
enum class MetaFile { kHeader, kIndex, kCache, kExpunge, kAnnotations, kSquat, kDav };
std::string_view MetaFileName(MetaFile f);          // "cyrus.header", ...
std::string_view MetaFileKey(MetaFile f);           // "header", "index", ... (config keys)
const std::vector<MetaFile>& AllMetaFiles();

// Spool directory of the mailbox's message files.
RootedPath DataDir(const ImapdConf& conf, const MailboxEntry& mb);
// Archive directory (== DataDir when archiving is not configured for the partition).
RootedPath ArchiveDir(const ImapdConf& conf, const MailboxEntry& mb);
// A metadata file, on its metapartition / metadir override when configured.
RootedPath MetaPath(const ImapdConf& conf, const MailboxEntry& mb, MetaFile f);
// <dir>/<uid>.
RootedPath MessagePath(const RootedPath& dir, uint32_t uid);

// Per-user file under configdirectory (suffix "seen", "sub", "counters", "conversations",
// "xapianactive", "dav", "mboxkey"). inbox is the user's INBOX entry when it exists (decides
// legacy vs uuid layout); nullptr means legacy.
RootedPath UserFile(const ImapdConf& conf, std::string_view userid, const MailboxEntry* inbox,
                    std::string_view suffix);
// Directory holding the user's per-user files (legacy: the hashed user dir shared with others;
// uuid: the user's own directory).
RootedPath UserSieveDir(const ImapdConf& conf, std::string_view userid,
                        const MailboxEntry* inbox);
// quotalegacy file of a quota root (internal name, e.g. "user.alice" or "example.com!user.bob").
RootedPath QuotaFile(const ImapdConf& conf, std::string_view quotaroot);

// Lock files (absolute): the user namespace lock "*U*<userid>" and the mailbox name lock
// (legacy: by internal name; uuid layout: by uniqueid).
std::string UserNamespaceLockPath(const ImapdConf& conf, std::string_view userid);
std::string MailboxNameLockPath(const ImapdConf& conf, const MailboxEntry& mb);

// True for a message file name "<digits>." (never stat()ed by the syncer).
bool IsMessageFileName(std::string_view name);
// True for "cyrus.*" metadata names.
bool IsMetaFileName(std::string_view name);

}  // namespace cyrsync::cyrus
