// MailboxListCache: the source's mailbox list, kept between the passes of a long-running syncer
// (--every). mailboxes.db is read again only when its stat tuple changed since the kept read, or
// when it had changed within the racy window of that read (a change in the same timestamp tick
// can leave the tuple as it was). At 10k folders reading and parsing it was a fifth of an
// unchanged pass; kept, it costs one stat. Thread-compatible.
#pragma once

#include <memory>
#include <vector>

#include "common/env.h"
#include "cyrus/config.h"
#include "cyrus/mboxlist.h"
#include "protocol/messages.h"

namespace cyrsync::syncer {

class MailboxListCache {
 public:
  using List = std::shared_ptr<const std::vector<cyrus::MailboxEntry>>;
  explicit MailboxListCache(int64_t racy_window_ns) : racy_window_ns_(racy_window_ns) {}

  // The list as of now: the kept one when mailboxes.db is provably the same file version.
  Result<List> Get(Env* env, const cyrus::ImapdConf& conf);

 private:
  int64_t racy_window_ns_;
  List list_;
  protocol::StatTuple stat_;  // taken before the kept list was read
  bool trusted_ = false;      // stat_ was settled (older than the racy window) when taken
};

}  // namespace cyrsync::syncer
