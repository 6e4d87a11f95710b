#include "syncer/mailbox_cache.h"

#include "syncer/spool.h"

namespace cyrsync::syncer {

Result<MailboxListCache::List> MailboxListCache::Get(Env* env, const cyrus::ImapdConf& conf) {
  // Stat first, read second: a change in between makes the next pass's stat differ from the
  // kept one, never the other way round.
  const int64_t now = env->NowNanos();
  ASSIGN_OR_RETURN(FileStat st, env->Stat(conf.mboxlist_db_path));
  const protocol::StatTuple tuple = ToTuple(st);
  if (list_ && trusted_ && tuple == stat_) return list_;
  list_.reset();
  ASSIGN_OR_RETURN(auto list, cyrus::LoadMailboxList(env, conf));
  list_ = std::make_shared<const std::vector<cyrus::MailboxEntry>>(std::move(list));
  stat_ = tuple;
  trusted_ = st.mtime_ns < now - racy_window_ns_ && st.ctime_ns < now - racy_window_ns_;
  return list_;
}

}  // namespace cyrsync::syncer
