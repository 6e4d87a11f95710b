#include "cyrus/spool_entry.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "common/bytes.h"
#include "cyrus/header.h"
#include "cyrus/index.h"

namespace cyrsync::cyrus {
namespace {

// 3.6 mbtype type letters (cyrus-formats.md §6.3); anything else is a legacy flag string.
constexpr std::string_view kTypeLetters = "enbcaspf";

struct Layout {
  std::string mbtype;
  bool legacy = false;
};

Layout TargetLayout(const MailboxHeader& h, const ImapdConf& target) {
  const std::string& t = h.mbtype;
  bool typed = !t.empty() && kTypeLetters.find(t[0]) != std::string_view::npos;
  char type = typed ? t[0] : 'e';
  bool legacy =
      t.empty() ? target.mailbox_legacy_dirs : t.find('l', typed ? 1 : 0) != std::string::npos;
  return {std::string(1, type) + (legacy ? "l" : ""), legacy};
}

// createdmodseq of the mailbox: offset 128 in index minor versions 16 and later (§4.1).
uint64_t CreatedModseq(std::string_view index, const IndexHeader& h) {
  constexpr size_t kOffset = 128;
  if (h.minor_version < 16 || h.start_offset < kOffset + 8 || index.size() < kOffset + 8) return 0;
  return LoadBE64(index, kOffset);
}

// "id\trights\t..." -> ordered pairs.
std::vector<std::pair<std::string, std::string>> SplitAcl(std::string_view acl) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!acl.empty()) {
    size_t t1 = acl.find('\t');
    if (t1 == std::string_view::npos) break;
    size_t t2 = acl.find('\t', t1 + 1);
    std::string_view rights =
        acl.substr(t1 + 1, t2 == std::string_view::npos ? acl.npos : t2 - t1 - 1);
    out.emplace_back(std::string(acl.substr(0, t1)), std::string(rights));
    if (t2 == std::string_view::npos) break;
    acl.remove_prefix(t2 + 1);
  }
  return out;
}

}  // namespace

Result<SpoolFolder> BuildSpoolFolder(std::string_view intname, std::string_view key,
                                     std::string_view header_bytes, std::string_view index_bytes,
                                     const ImapdConf& target) {
  const std::string where(intname);
  ASSIGN_OR_RETURN(auto h, ParseMailboxHeader(header_bytes, where + "/cyrus.header"));
  ASSIGN_OR_RETURN(auto ih, ParseIndexHeader(index_bytes, where + "/cyrus.index"));
  SpoolFolder f;
  f.mb.intname = where;
  // The archive key is mailboxes.db's uniqueid (which Cyrus prefers over the header's), or the
  // internal name for a folder that had none.
  f.mb.uniqueid = key != intname ? std::string(key) : h.uniqueid;
  if (f.mb.uniqueid.empty()) {
    return FailedPreconditionError("no uniqueid for " + where +
                                   ": restore it with --to and reconstruct it into a folder");
  }
  Layout layout = TargetLayout(h, target);
  f.mb.mbtype = layout.mbtype;
  f.mb.legacy_dirs = layout.legacy;
  f.mb.partition = target.defaultpartition;
  f.mb.acl = h.acl;
  f.mb.uidvalidity = ih.uidvalidity;
  f.createdmodseq = CreatedModseq(index_bytes, ih);
  f.foldermodseq = ih.highestmodseq;
  return f;
}

std::string MailboxesJson(const std::vector<SpoolFolder>& folders) {
  using ojson = nlohmann::ordered_json;
  ojson out = ojson::object();
  for (const auto& f : folders) {
    ojson acl = ojson::object();
    for (auto& [id, rights] : SplitAcl(f.mb.acl)) acl[id] = rights;
    ojson e = ojson::object();
    e["name"] = f.mb.intname;
    e["mtime"] = std::to_string(f.mtime);
    e["uidvalidity"] = std::to_string(f.mb.uidvalidity);
    e["createdmodseq"] = std::to_string(f.createdmodseq);
    e["foldermodseq"] = std::to_string(f.foldermodseq);
    e["mbtype"] = f.mb.mbtype;
    e["partition"] = f.mb.partition;
    e["acl"] = std::move(acl);
    e["uniqueid"] = f.mb.uniqueid;
    e["name_history"] = ojson::array();
    out[f.mb.intname] = std::move(e);
  }
  return out.dump(1) + "\n";
}

}  // namespace cyrsync::cyrus
