#include "syncer/guard.h"

#include <string>

namespace cyrsync::syncer {
namespace {

Status Refuse(const std::string& why) {
  return FailedPreconditionError("refusing to sync: " + why +
                                 "; the source looks lost or damaged. Check it, or pass --force "
                                 "to let this side overwrite the replica anyway");
}

}  // namespace

Status CheckSourceRoots(Env* env, const cyrus::ImapdConf& conf, const Options& opts) {
  if (opts.force) return Status::Ok();
  if (!env->Stat(conf.configdirectory).ok()) {
    return Refuse("configdirectory " + conf.configdirectory + " is missing");
  }
  if (!env->Stat(conf.mboxlist_db_path).ok()) {
    return Refuse("mailboxes.db " + conf.mboxlist_db_path + " is missing");
  }
  for (const auto& [name, dir] : conf.partitions) {
    if (!env->Stat(dir).ok()) return Refuse("partition " + name + " (" + dir + ") is missing");
  }
  return Status::Ok();
}

Status CheckGuard(const GuardInput& in, const Options& opts) {
  if (opts.force) return Status::Ok();
  if (in.source_folders == 0 && in.replica_folders > 0) {
    return Refuse("the source lists no folders while the replica holds " +
                  std::to_string(in.replica_folders));
  }
  if (in.source_folders > 0 &&
      static_cast<double>(in.source_missing) > opts.max_missing_share * in.source_folders) {
    return Refuse(std::to_string(in.source_missing) + " of " + std::to_string(in.source_folders) +
                  " folders listed in mailboxes.db have no cyrus.index on the source");
  }
  if (in.replica_folders > 0 && in.deletions > 1 &&
      static_cast<double>(in.deletions) > opts.max_delete_share * in.replica_folders) {
    return Refuse("the pass would delete " + std::to_string(in.deletions) + " of the replica's " +
                  std::to_string(in.replica_folders) + " folders");
  }
  return Status::Ok();
}

}  // namespace cyrsync::syncer
