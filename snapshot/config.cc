#include "snapshot/config.h"

#include <nlohmann/json.hpp>

namespace cyrsync::snapshot {
namespace {

using json = nlohmann::json;

Result<Slot> ParseSlot(const json& j, const std::string& where) {
  Slot s;
  s.host = j.value("host", "");
  s.port = static_cast<uint16_t>(j.value("port", 0));
  s.role = j.value("role", "");
  s.drive = j.value("drive", s.host);
  if (s.host.empty() || s.port == 0) return InvalidArgumentError(where + ": host and port required");
  if (s.role != "master" && s.role != "replica") {
    return InvalidArgumentError(where + ": role must be master or replica");
  }
  return s;
}

Status ParseStores(const json& j, SnapshotConfig* c) {
  for (auto& [name, store] : j.items()) {
    StoreSlots ss;
    const json slots = store.value("slots", json::array());
    for (size_t i = 0; i < slots.size(); ++i) {
      ASSIGN_OR_RETURN(Slot s, ParseSlot(slots[i], "stores." + name + ".slots[" +
                                                       std::to_string(i) + "]"));
      ss.slots.push_back(std::move(s));
    }
    if (ss.slots.empty()) return InvalidArgumentError("stores." + name + ": no slots");
    c->stores[name] = std::move(ss);
  }
  return Status::Ok();
}

}  // namespace

const Slot* StoreSlots::Find(std::string_view role) const {
  for (const auto& s : slots) {
    if (s.role == role) return &s;
  }
  return nullptr;
}

const StoreSlots* SnapshotConfig::StoreOf(const std::string& user) const {
  auto u = users.find(user);
  const std::string& name = u != users.end() ? u->second : default_store;
  auto it = stores.find(name);
  return it == stores.end() ? nullptr : &it->second;
}

Result<SnapshotConfig> ParseSnapshotConfig(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError("config is not a JSON object");
  SnapshotConfig c;
  try {
    c.archive_dir = j.at("archive_dir").get<std::string>();
    const json& tls = j.at("tls");
    c.tls = {tls.at("ca").get<std::string>(), tls.at("cert").get<std::string>(),
             tls.at("key").get<std::string>()};
    c.default_from = j.value("default_from", c.default_from);
    c.on_replica_unavailable = j.value("on_replica_unavailable", c.on_replica_unavailable);
    c.max_replica_lag_seconds = j.value("max_replica_lag_seconds", c.max_replica_lag_seconds);
    c.workers = j.value("workers", 0);
    c.batch = j.value("batch", c.batch);
    c.default_store = j.value("default_store", "");
    c.writer.compression_level = j.value("compression_level", c.writer.compression_level);
    c.retention_seconds = j.value("retention_days", int64_t{30}) * 86400;
    const json users = j.value("users", json::object());  // named: items() must not outlive it
    for (auto& [u, s] : users.items()) c.users[u] = s.get<std::string>();
    RETURN_IF_ERROR(ParseStores(j.at("stores"), &c));
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("config: ") + e.what());
  }
  if (c.default_from != "master" && c.default_from != "replica") {
    return InvalidArgumentError("default_from must be master or replica");
  }
  if (c.on_replica_unavailable != "master" && c.on_replica_unavailable != "fail") {
    return InvalidArgumentError("on_replica_unavailable must be master or fail");
  }
  return c;
}

}  // namespace cyrsync::snapshot
