#include "cyrus/header.h"

#include <string>

#include "cyrus/dlist.h"
#include "cyrus/dlist_internal.h"

namespace cyrsync::cyrus {
namespace internal {
namespace {

using namespace std::string_view_literals;

// MAILBOX_HEADER_MAGIC (§3): compared in full, so a file of another kind with the same first
// bytes (twoskip, skiplist) is never mistaken for a header.
constexpr std::string_view kHeaderMagic =
    "\241\002\213\015Cyrus mailbox header\n"
    "\"The best thing about this system was that it had lots of goals.\"\n"
    "\t--Jim Morris on Andrew\n"sv;

// Cyrus's MAX_USER_FLAGS: the index record has 4 x 32 flag bits.
constexpr size_t kMaxUserFlags = 128;

Status Corrupt(std::string_view path, std::string_view what, size_t offset) {
  return CorruptionError(std::string(path) + ": " + std::string(what) + " at offset " +
                         std::to_string(offset));
}

// Undefined slots past the last defined flag carry no information (the text writer leaves a
// trailing space); dropping them makes both formats compare equal.
void TrimTrailingEmpty(std::vector<std::string>* flags) {
  while (!flags->empty() && flags->back().empty()) flags->pop_back();
}

// Finds the LF ending the line that starts at `start`; npos when the file ends first.
size_t LineEnd(std::string_view bytes, size_t start) { return bytes.find('\n', start); }

// Line 2 of the text format: single-space separated names; an empty token is an undefined slot
// (mirrors mailbox_read_header, which assigns tokens to slots in order).
Result<std::vector<std::string>> SplitTextFlags(std::string_view line, size_t offset,
                                                std::string_view path) {
  std::vector<std::string> flags;
  size_t pos = 0;
  while (pos <= line.size()) {
    size_t sp = line.find(' ', pos);
    if (sp == std::string_view::npos) sp = line.size();
    if (flags.size() == kMaxUserFlags) {
      return Corrupt(path, "more than 128 user flags", offset + pos);
    }
    flags.emplace_back(line.substr(pos, sp - pos));
    pos = sp + 1;
  }
  TrimTrailingEmpty(&flags);
  return flags;
}

Result<MailboxHeader> ParseTextHeader(std::string_view bytes, std::string_view path) {
  MailboxHeader h;
  size_t l1 = kHeaderMagic.size();
  size_t e1 = LineEnd(bytes, l1);
  if (e1 == std::string_view::npos) return Corrupt(path, "truncated quotaroot line", bytes.size());
  std::string_view line1 = bytes.substr(l1, e1 - l1);
  size_t tab = line1.find('\t');
  h.quotaroot = std::string(line1.substr(0, tab));
  if (tab != std::string_view::npos) h.uniqueid = std::string(line1.substr(tab + 1));

  size_t l2 = e1 + 1;
  size_t e2 = LineEnd(bytes, l2);
  if (e2 == std::string_view::npos) return Corrupt(path, "truncated user flags line", bytes.size());
  ASSIGN_OR_RETURN(h.user_flags, SplitTextFlags(bytes.substr(l2, e2 - l2), l2, path));

  // The ACL line normally ends in LF; a missing final LF loses nothing, so it is accepted.
  size_t l3 = e2 + 1;
  size_t e3 = LineEnd(bytes, l3);
  if (e3 == std::string_view::npos) e3 = bytes.size();
  h.acl = std::string(bytes.substr(l3, e3 - l3));
  return h;
}

// U: a list in slot order, NIL for holes.
Result<std::vector<std::string>> DlistUserFlags(const Dlist* u, size_t offset,
                                                std::string_view path) {
  std::vector<std::string> flags;
  if (u == nullptr || u->kind == Dlist::Kind::kNil) return flags;
  if (u->kind != Dlist::Kind::kList) return Corrupt(path, "user flags (U) not a list", offset);
  if (u->items.size() > kMaxUserFlags) return Corrupt(path, "more than 128 user flags", offset);
  for (const Dlist& item : u->items) {
    if (item.kind == Dlist::Kind::kNil) {
      flags.emplace_back();
    } else if (item.kind == Dlist::Kind::kAtom) {
      flags.push_back(item.str);
    } else {
      return Corrupt(path, "user flag (U) entry not a string", offset);
    }
  }
  TrimTrailingEmpty(&flags);
  return flags;
}

// A: %(id rights ...) flattened to the text format's "id TAB rights TAB" form so callers see one
// representation whichever format the file used.
Result<std::string> DlistAcl(const Dlist* a, size_t offset, std::string_view path) {
  if (a == nullptr || a->kind == Dlist::Kind::kNil) return std::string();
  if (a->kind == Dlist::Kind::kAtom) return a->str;
  if (a->kind != Dlist::Kind::kKvList) return Corrupt(path, "ACL (A) not a kvlist", offset);
  std::string acl;
  for (const auto& [id, rights] : a->kv) {
    if (rights.kind != Dlist::Kind::kAtom) {
      return Corrupt(path, "ACL (A) rights not a string", offset);
    }
    acl += id + "\t" + rights.str + "\t";
  }
  return acl;
}

Result<MailboxHeader> ParseDlistHeader(std::string_view bytes, std::string_view path) {
  size_t start = kHeaderMagic.size();
  auto parsed = ParseDlistAt(bytes.substr(start), start);
  if (!parsed.ok()) return parsed.error().WithContext(path);
  const Dlist& d = *parsed;
  if (d.kind != Dlist::Kind::kKvList) return Corrupt(path, "header body not a kvlist", start);
  MailboxHeader h;
  h.dlist_format = true;
  h.mbtype = d.GetString("T");
  h.name = d.GetString("N");
  h.uniqueid = d.GetString("I");
  h.quotaroot = d.GetString("Q");
  ASSIGN_OR_RETURN(h.user_flags, DlistUserFlags(d.Find("U"), start, path));
  ASSIGN_OR_RETURN(h.acl, DlistAcl(d.Find("A"), start, path));
  return h;
}

}  // namespace
}  // namespace internal

Result<MailboxHeader> ParseMailboxHeader(std::string_view bytes, std::string_view path) {
  const auto& magic = internal::kHeaderMagic;
  if (bytes.size() < magic.size()) {
    return internal::Corrupt(path, "truncated header magic", bytes.size());
  }
  for (size_t i = 0; i < magic.size(); ++i) {
    if (bytes[i] != magic[i]) return internal::Corrupt(path, "bad header magic", i);
  }
  // 3.6+ writes a single dlist line; older servers write three text lines (§3).
  if (bytes.size() > magic.size() && bytes[magic.size()] == '%') {
    return internal::ParseDlistHeader(bytes, path);
  }
  return internal::ParseTextHeader(bytes, path);
}

Result<std::string> RewriteMailboxHeader(std::string_view bytes, std::string_view path,
                                         std::string_view name, std::string_view uniqueid) {
  ASSIGN_OR_RETURN(MailboxHeader h, ParseMailboxHeader(bytes, path));
  const size_t start = internal::kHeaderMagic.size();
  std::string out(bytes.substr(0, start));
  if (h.dlist_format) {
    ASSIGN_OR_RETURN(Dlist d, internal::ParseDlistAt(bytes.substr(start), start));
    bool has_name = false, has_id = false;
    for (auto& [key, value] : d.kv) {
      if (key != "N" && key != "I") continue;
      (key == "N" ? has_name : has_id) = true;
      value.kind = Dlist::Kind::kAtom;
      value.str = std::string(key == "N" ? name : uniqueid);
    }
    if (!has_name || !has_id) return internal::Corrupt(path, "header without N or I", start);
    return out + PrintDlist(d) + "\n";
  }
  const size_t eol = bytes.find('\n', start);  // ParseTextHeader checked it exists
  out += h.quotaroot + "\t" + std::string(uniqueid);
  out.append(bytes.substr(eol));
  return out;
}

}  // namespace cyrsync::cyrus
