// mailboxes.db interpretation for every layout a 3.6 server may read: 2.x text values, 2.5-3.4
// dlist values keyed by internal name, and 3.6+ N<dbname>/I<uniqueid> records (cyrus-formats.md
// §8). Gives each mailbox its internal name, owner, uniqueid, partition and directory layout.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "cyrus/config.h"
#include "cyrus/cyrusdb.h"

namespace cyrsync::cyrus {

struct MailboxEntry {
  std::string intname;    // internal name: [domain!]user.alice.Sent, shared.x, DELETED.user...
  std::string uniqueid;   // "" for very old entries without one
  std::string partition;  // partition name; "" for tombstones/intermediates/remote
  std::string mbtype;     // 3.6 string form ("e", "el", "ed", "f", ...) or converted legacy flags
  std::string acl;
  uint32_t uidvalidity = 0;
  bool legacy_dirs = false;   // by-name directories (mbtype 'l', or any pre-3.6 database)
  bool tombstone = false;     // 'd' deleted entry kept for replication
  bool intermediate = false;  // 'i'
  bool remote = false;        // 'r' / murder server set
  bool reserved = false;      // 'z'
  bool moving = false;        // 'm'

  // A mailbox with files on this server: has a partition and none of d/i/r/z/m.
  bool IsReal() const;
  // "alice" / "alice@example.com" for user mailboxes (including DELETED.user.alice...), "" for
  // shared ones.
  std::string Owner() const;
  // The domain part of intname ("" without one).
  std::string Domain() const;
};

// Interprets the raw records of a mailboxes.db.
Result<std::vector<MailboxEntry>> ParseMailboxList(const KvList& records, const ImapdConf& conf);

// Reads conf.mboxlist_db_path under its fcntl read lock (released before returning), detects the
// backend, and parses it.
Result<std::vector<MailboxEntry>> LoadMailboxList(Env* env, const ImapdConf& conf);

// Conversions between 3.6 dbnames (0x1D domain, 0x1F separators) and internal names.
std::string DbnameToIntname(std::string_view dbname);
std::string IntnameToDbname(std::string_view intname);

}  // namespace cyrsync::cyrus
