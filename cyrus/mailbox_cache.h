// MailboxListCache: a parsed mailbox list kept between uses (the passes of `sync --every`, the
// requests a replica daemon serves). mailboxes.db is read again only when its stat tuple changed
// since the kept read, or when it had changed within the racy window of that read (a change in
// the same timestamp tick can leave the tuple as it was). At 10k folders reading and parsing it
// was a fifth of an unchanged pass; kept, it costs one stat. Thread-compatible.
#pragma once

#include <memory>
#include <vector>

#include "common/env.h"
#include "cyrus/config.h"
#include "cyrus/mboxlist.h"

namespace cyrsync::cyrus {

class MailboxListCache {
 public:
  using List = std::shared_ptr<const std::vector<MailboxEntry>>;
  explicit MailboxListCache(int64_t racy_window_ns) : racy_window_ns_(racy_window_ns) {}

  // The list as of now: the kept one when mailboxes.db is provably the same file version.
  Result<List> Get(Env* env, const ImapdConf& conf);

 private:
  struct Version {
    uint64_t size = 0, ino = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const Version&) const = default;
  };
  int64_t racy_window_ns_;
  List list_;
  Version version_;       // taken before the kept list was read
  bool trusted_ = false;  // version_ was settled (older than the racy window) when taken
};

}  // namespace cyrsync::cyrus
