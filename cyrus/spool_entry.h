// A folder's mailboxes.db entry rebuilt from its cyrus.header and cyrus.index, for a target
// server described by its imapd.conf, and the `ctl_mboxlist -u` input that registers such
// entries (cyrus-formats.md §3, §4.1, §8.3). Used to put restored folders into a Cyrus spool.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "cyrus/config.h"
#include "cyrus/mboxlist.h"

namespace cyrsync::cyrus {

// A restored folder as the target server will register it.
struct SpoolFolder {
  MailboxEntry mb;  // intname, uniqueid, mbtype, partition, acl, uidvalidity, legacy_dirs
  uint64_t createdmodseq = 0;
  uint64_t foldermodseq = 0;
  int64_t mtime = 0;  // unix seconds; ctl_mboxlist -u of 3.6.1 replaces it with its own clock
};

// Builds a folder's target entry from its archived cyrus.header and cyrus.index: uniqueid (the
// archive key unless it is the internal name, else the header's), ACL, uidvalidity, modseqs;
// partition = target.defaultpartition; mbtype = the header's type letter ('e' for a pre-3.6 text
// header) plus 'l' when the folder keeps by-name directories: as the header's T says, or, for a
// text header without T, as target.mailbox_legacy_dirs says (Cyrus takes the path from the
// entry and the type from the header, so the two must agree). kCorruption for bad bytes;
// kFailedPrecondition when no uniqueid can be found.
Result<SpoolFolder> BuildSpoolFolder(std::string_view intname, std::string_view key,
                                     std::string_view header_bytes, std::string_view index_bytes,
                                     const ImapdConf& target);

// The `ctl_mboxlist -u` input for these folders (keys and string values as 3.6.1's `-d` prints
// them; ACL entries in their original order).
std::string MailboxesJson(const std::vector<SpoolFolder>& folders);

}  // namespace cyrsync::cyrus
