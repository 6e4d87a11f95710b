#include "cyrus/mboxlist.h"

#include <charconv>
#include <string>
#include <utility>
#include <vector>

#include "cyrus/dlist.h"

namespace cyrsync::cyrus {
namespace internal {
namespace {

constexpr char kDbDomainSep = '\x1D';
constexpr char kDbHierSep = '\x1F';
constexpr std::string_view kDeletedPrefix = "DELETED";

// Mailbox type (first letter of a 3.6 mbtype string) and flags, in Cyrus's print order
// (imap/mboxlist.c mboxlist_mbtype_to_string).
constexpr std::string_view kTypeLetters = "enbcajspf";
constexpr std::string_view kFlagOrder = "dmrzil";

struct Mbtype {
  char type = 'e';
  std::string flags;  // subset of kFlagOrder, in that order
};

void AddFlag(Mbtype* t, char f) {
  if (t->flags.find(f) == std::string::npos) t->flags.push_back(f);
}

std::string MbtypeString(const Mbtype& t) {
  std::string out(1, t.type);
  for (char f : kFlagOrder) {
    if (t.flags.find(f) != std::string::npos) out.push_back(f);
  }
  return out;
}

// Letters as mboxlist_string_to_mbtype reads them (3.6 "el"/"edl" and the <= 3.4 flag-only
// strings "d", "n", "c", ...): a type letter sets the type and, as in Cyrus, drops flags seen
// before it; unknown letters are ignored.
Mbtype MbtypeFromLetters(std::string_view s) {
  Mbtype t;
  for (char c : s) {
    if (kTypeLetters.find(c) != std::string_view::npos) {
      t = Mbtype{c, ""};
    } else if (kFlagOrder.find(c) != std::string_view::npos) {
      AddFlag(&t, c);
    }
  }
  return t;
}

// 2.x numeric mbtype: 1 REMOTE, 2 RESERVE, 4 NETNEWS, 8 MOVING, 16 DELETED, 32 CALENDAR,
// 64 ADDRESSBOOK.
Mbtype MbtypeFromNumber(uint32_t n) {
  Mbtype t;
  if (n & 4) t.type = 'n';
  if (n & 32) t.type = 'c';
  if (n & 64) t.type = 'a';
  if (n & 16) AddFlag(&t, 'd');
  if (n & 8) AddFlag(&t, 'm');
  if (n & 1) AddFlag(&t, 'r');
  if (n & 2) AddFlag(&t, 'z');
  return t;
}

void ApplyMbtype(MailboxEntry* e, Mbtype t, bool pre36) {
  if (pre36) AddFlag(&t, 'l');  // what ctl_cyrusdb -r's mboxlist_upgrade sets
  auto has = [&](char f) { return t.flags.find(f) != std::string::npos; };
  e->mbtype = MbtypeString(t);
  e->legacy_dirs = has('l');
  e->tombstone = has('d');
  e->moving = has('m');
  e->remote = has('r') || e->remote;
  e->reserved = has('z');
  e->intermediate = has('i');
}

uint32_t ParseU32(std::string_view s) {
  uint32_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// A: %(id rights id rights ...) -> Cyrus's internal "id\trights\t..." form.
std::string AclFromDlist(const Dlist* a) {
  std::string acl;
  if (a == nullptr || a->kind != Dlist::Kind::kKvList) return acl;
  for (const auto& [id, rights] : a->kv) {
    acl += id + '\t' + rights.str + '\t';
  }
  return acl;
}

// The keys a record's value is read for; the rest (the name history H, modseqs...) are only
// checked: building them was most of the time of reading a large mailboxes.db.
constexpr std::string_view kEntryKeys[] = {"I", "P", "S", "V", "A", "T"};

Result<MailboxEntry> EntryFromDlistValue(std::string_view value, std::string intname, bool pre36) {
  ASSIGN_OR_RETURN(Dlist d, ParseDlistKeys(value, kEntryKeys));
  if (d.kind != Dlist::Kind::kKvList) return CorruptionError("value is not a kvlist");
  MailboxEntry e;
  e.intname = std::move(intname);
  e.uniqueid = d.GetString("I");
  e.partition = d.GetString("P");
  e.remote = !d.GetString("S").empty();
  e.uidvalidity = ParseU32(d.GetString("V"));
  e.acl = AclFromDlist(d.Find("A"));
  ApplyMbtype(&e, MbtypeFromLetters(d.GetString("T")), pre36);
  return e;
}

// "(uniqueid X specialuse Y) " prefix accepted by 3.x mboxlist_parse_entry.
std::string_view SkipExtendedPrefix(std::string_view v, MailboxEntry* e) {
  if (v.empty() || v.front() != '(') return v;
  size_t close = v.find(')');
  if (close == std::string_view::npos) return v.substr(1);
  std::string_view inner = v.substr(1, close - 1);
  size_t key = inner.find("uniqueid ");
  if (key != std::string_view::npos) {
    std::string_view id = inner.substr(key + 9);
    e->uniqueid = std::string(id.substr(0, id.find(' ')));
  }
  v.remove_prefix(close + 1);
  if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  return v;
}

// 2.x text value: "<mbtype> <[server!]partition> <acl>".
Result<MailboxEntry> EntryFromTextValue(std::string_view v, std::string intname) {
  MailboxEntry e;
  e.intname = std::move(intname);
  v = SkipExtendedPrefix(v, &e);
  size_t digits = 0;
  while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
  if (digits == 0) return CorruptionError("text value without a numeric mbtype");
  uint32_t mbtype = ParseU32(v.substr(0, digits));
  v.remove_prefix(digits);
  if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  size_t sp = v.find(' ');
  std::string_view part = v.substr(0, sp);
  e.acl = sp == std::string_view::npos ? "" : std::string(v.substr(sp + 1));
  size_t bang = part.find('!');
  if (bang != std::string_view::npos) {
    e.remote = true;
    part.remove_prefix(bang + 1);
  }
  e.partition = std::string(part);
  ApplyMbtype(&e, MbtypeFromNumber(mbtype), /*pre36=*/true);
  return e;
}

// 3.6 databases hold I<uniqueid> records whose value names the mailbox (N); older ones are
// keyed by internal name (imap/mboxlist.c _check_rec_cb).
bool Is36Record(std::string_view key, std::string_view value) {
  if (key.empty() || key[0] != 'I' || value.empty() || value[0] != '%') return false;
  auto d = ParseDlist(value);
  return d.ok() && !d->GetString("N").empty();
}

Result<MailboxEntry> ParseRecord(std::string_view key, std::string_view value, bool v36) {
  if (v36) {
    std::string intname = DbnameToIntname(std::string_view(key).substr(1));
    if (value.empty() || value[0] != '%') {
      return CorruptionError(intname + ": value is not a dlist");
    }
    auto e = EntryFromDlistValue(value, intname, /*pre36=*/false);
    return e.ok() ? e : e.error().WithContext(intname);
  }
  if (value.empty()) return CorruptionError(std::string(key) + ": empty value");
  auto e = value[0] == '%' ? EntryFromDlistValue(value, std::string(key), /*pre36=*/true)
                           : EntryFromTextValue(value, std::string(key));
  return e.ok() ? e : e.error().WithContext(std::string(key));
}

bool IsEntryKey(std::string_view key, bool v36) {
  if (key.empty()) return false;
  if (v36) return key[0] == 'N' && key.size() > 1;
  return key[0] != '$';  // $RACL / $RUNQ bookkeeping
}

std::vector<std::string> SplitDots(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.') {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

}  // namespace
}  // namespace internal

bool MailboxEntry::IsReal() const {
  return !partition.empty() && !tombstone && !intermediate && !remote && !reserved && !moving;
}

std::string MailboxEntry::Domain() const {
  size_t bang = intname.find('!');
  return bang == std::string::npos ? "" : intname.substr(0, bang);
}

std::string MailboxEntry::Owner() const {
  size_t bang = intname.find('!');
  std::string_view rest = intname;
  if (bang != std::string::npos) rest.remove_prefix(bang + 1);
  std::vector<std::string> comps = internal::SplitDots(rest);
  if (comps.size() > 2 && comps[0] == internal::kDeletedPrefix) {
    comps.erase(comps.begin());
    comps.pop_back();
  }
  if (comps.size() < 2 || comps[0] != "user") return "";
  std::string owner = comps[1];
  for (char& c : owner) {
    if (c == '^') c = '.';
  }
  if (bang != std::string::npos) owner += "@" + intname.substr(0, bang);
  return owner;
}

std::string DbnameToIntname(std::string_view dbname) {
  std::string out;
  out.reserve(dbname.size());
  size_t gs = dbname.find(internal::kDbDomainSep);
  if (gs != std::string_view::npos) {
    out.append(dbname.substr(0, gs)).push_back('!');
    dbname.remove_prefix(gs + 1);
  }
  for (char c : dbname) {
    out.push_back(c == internal::kDbHierSep ? '.' : c == '.' ? '^' : c);
  }
  return out;
}

std::string IntnameToDbname(std::string_view intname) {
  std::string out;
  out.reserve(intname.size());
  size_t bang = intname.find('!');
  if (bang != std::string_view::npos) {
    out.append(intname.substr(0, bang)).push_back(internal::kDbDomainSep);
    intname.remove_prefix(bang + 1);
  }
  for (char c : intname) {
    out.push_back(c == '.' ? internal::kDbHierSep : c == '^' ? '.' : c);
  }
  return out;
}

namespace {

// `walk` visits the database's records; it is called twice. The first pass finds the layout
// and counts the entries, the second parses exactly those into a vector of the right size.
// Parse errors name `context` (the file) when it is not empty.
Result<std::vector<MailboxEntry>> ParseEntries(const std::function<Status(const KvVisitor&)>& walk,
                                               const std::string& context) {
  bool v36 = false;
  size_t n36 = 0, nlegacy = 0;
  RETURN_IF_ERROR(walk([&](std::string_view key, std::string_view value) {
    if (!v36) v36 = internal::Is36Record(key, value);
    n36 += internal::IsEntryKey(key, true);
    nlegacy += internal::IsEntryKey(key, false);
    return Status::Ok();
  }));
  std::vector<MailboxEntry> out;
  out.reserve(v36 ? n36 : nlegacy);
  RETURN_IF_ERROR(walk([&](std::string_view key, std::string_view value) -> Status {
    if (!internal::IsEntryKey(key, v36)) return Status::Ok();
    auto e = internal::ParseRecord(key, value, v36);
    if (!e.ok()) return context.empty() ? e.error() : e.error().WithContext(context);
    out.push_back(std::move(*e));
    return Status::Ok();
  }));
  return out;
}

}  // namespace

Result<std::vector<MailboxEntry>> ParseMailboxList(const KvList& records, const ImapdConf& conf) {
  (void)conf;  // the layout is fully described by the records themselves
  return ParseEntries([&records](const KvVisitor& visit) {
    for (const auto& [key, value] : records) RETURN_IF_ERROR(visit(key, value));
    return Status::Ok();
  }, "");
}

namespace internal {
namespace {

constexpr int kMaxReopen = 5;

// Opens path and takes a shared fcntl lock; if a checkpoint renamed a new file over path in
// the meantime (inode changed), retries on the new file, like Cyrus's lock_reopen.
Result<std::unique_ptr<ReadableFile>> OpenLocked(Env* env, const std::string& path) {
  for (int attempt = 0; attempt < kMaxReopen; ++attempt) {
    ASSIGN_OR_RETURN(auto file, env->OpenRead(path));
    RETURN_IF_ERROR(file->Lock(LockMode::kShared));
    ASSIGN_OR_RETURN(FileStat fd_stat, file->Stat());
    ASSIGN_OR_RETURN(FileStat path_stat, env->Stat(path));
    if (fd_stat.ino == path_stat.ino && fd_stat.dev == path_stat.dev) return file;
  }
  return AbortedError(path + ": replaced while locking, giving up after retries");
}

}  // namespace
}  // namespace internal

Result<std::vector<MailboxEntry>> LoadMailboxList(Env* env, const ImapdConf& conf) {
  const std::string& path = conf.mboxlist_db_path;
  std::string bytes;
  {
    // The lock lives as long as the file object: released at the end of this block.
    ASSIGN_OR_RETURN(auto file, internal::OpenLocked(env, path));
    ASSIGN_OR_RETURN(bytes, file->ReadAll());
  }
  // Parsed straight from the file image: no second copy of the records.
  return ParseEntries([&](const KvVisitor& visit) { return VisitCyrusDb(bytes, path, visit); },
                      path);
}

}  // namespace cyrsync::cyrus
