#include "cyrus/mailbox_cache.h"

namespace cyrsync::cyrus {

Result<MailboxListCache::List> MailboxListCache::Get(Env* env, const ImapdConf& conf) {
  // Stat first, read second: a change in between makes the next stat differ from the kept one,
  // never the other way round.
  const int64_t now = env->NowNanos();
  ASSIGN_OR_RETURN(FileStat st, env->Stat(conf.mboxlist_db_path));
  const Version v{st.size, st.ino, st.mtime_ns, st.ctime_ns};
  if (list_ && trusted_ && v == version_) return list_;
  list_.reset();
  ASSIGN_OR_RETURN(auto list, LoadMailboxList(env, conf));
  list_ = std::make_shared<const std::vector<MailboxEntry>>(std::move(list));
  version_ = v;
  trusted_ = st.mtime_ns < now - racy_window_ns_ && st.ctime_ns < now - racy_window_ns_;
  return list_;
}

}  // namespace cyrsync::cyrus
