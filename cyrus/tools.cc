#include "cyrus/tools.h"

#include <map>
#include <nlohmann/json.hpp>

#include "common/process.h"
#include "cyrus/mboxlist.h"

namespace cyrsync::cyrus {
namespace {

std::string Tail(const std::string& s, size_t n = 800) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

Status CheckRegistered(Env* env, const ImapdConf& conf, const std::string& json) {
  const nlohmann::json parsed = nlohmann::json::parse(json, nullptr, false);
  if (!parsed.is_object()) return InternalError("the mailboxes JSON does not parse");
  std::map<std::string, std::string> want;
  for (const auto& [name, e] : parsed.items()) want[name] = e.value("uniqueid", "");
  ASSIGN_OR_RETURN(auto list, LoadMailboxList(env, conf));
  for (const auto& mb : list) {
    auto it = want.find(mb.intname);
    if (it != want.end() && it->second == mb.uniqueid && mb.IsReal()) want.erase(it);
  }
  if (want.empty()) return Status::Ok();
  return FailedPreconditionError("ctl_mboxlist -u did not register " + want.begin()->first +
                                 " (and " + std::to_string(want.size() - 1) + " more)");
}

}  // namespace

Status UndumpMailboxes(Env* env, const ImapdConf& conf, const CyrusTools& tools,
                       const std::string& json_path, const std::string& json) {
  const std::string exe = JoinPath(tools.bin_dir, "ctl_mboxlist");
  ASSIGN_OR_RETURN(auto r, RunProcess({exe, "-C", tools.conf_path, "-u"}, json_path));
  if (!r.ok()) {
    return FailedPreconditionError(exe + " -u failed (" + r.Describe() +
                                   "; mailboxes.db may be partly updated): " + Tail(r.output));
  }
  return CheckRegistered(env, conf, json);
}

Result<std::string> ReconstructFolder(const CyrusTools& tools, const std::string& intname) {
  const std::string exe = JoinPath(tools.bin_dir, "reconstruct");
  ASSIGN_OR_RETURN(auto r, RunProcess({exe, "-C", tools.conf_path, intname}));
  if (!r.ok()) {
    return FailedPreconditionError(exe + " " + intname + " failed (" + r.Describe() +
                                   "): " + Tail(r.output));
  }
  return r.output;
}

Status FixUserQuota(const CyrusTools& tools, const std::string& userid) {
  const std::string exe = JoinPath(tools.bin_dir, "quota");
  ASSIGN_OR_RETURN(auto r, RunProcess({exe, "-C", tools.conf_path, "-f", "-u", userid}));
  if (!r.ok()) {
    return FailedPreconditionError(exe + " -f -u " + userid + " failed (" + r.Describe() +
                                   "): " + Tail(r.output));
  }
  return Status::Ok();
}

}  // namespace cyrsync::cyrus
