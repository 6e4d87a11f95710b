// Fuzzes the cyrus.header reader and the dlist parser under it (HOUSE-STYLE H5).
//
// The input is tried as a whole cyrus.header, as the body after the header magic (so the fuzzer
// need not rediscover the 90-byte magic), and as a dlist value. Properties checked:
//  - rejects are kCorruption;
//  - an accepted header has at most 128 user flags and no trailing undefined slot;
//  - an accepted dlist, printed back in two forms (every string a {N} literal; and the
//    shortest of atom, quoted string, literal), and by the product's PrintDlist, parses to
//    the same tree;
//  - an accepted header rewritten for a new name and uniqueid reads back with them and with
//    every other field unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cyrus/dlist.h"
#include "cyrus/header.h"
#include "tests/fuzz/fuzz_util.h"

namespace cyrsync::cyrus {
namespace {

using fuzz::CheckCorruption;

constexpr std::string_view kMagic =
    "\241\002\213\015Cyrus mailbox header\n"
    "\"The best thing about this system was that it had lots of goals.\"\n"
    "\t--Jim Morris on Andrew\n";

void CheckHeader(std::string_view bytes) {
  auto h = ParseMailboxHeader(bytes, "fuzz/cyrus.header");
  if (!h.ok()) {
    CheckCorruption(h.error(), "ParseMailboxHeader");
    return;
  }
  FUZZ_CHECK(h->user_flags.size() <= 128, "more than 128 user flags accepted");
  FUZZ_CHECK(h->user_flags.empty() || !h->user_flags.back().empty(),
             "trailing undefined user flag slot kept");
  // A header rewritten for a restored copy reads back with the new name and uniqueid and
  // everything else unchanged.
  auto re = RewriteMailboxHeader(bytes, "fuzz/cyrus.header", "user.x.Re stored", "id9");
  if (!re.ok()) {
    CheckCorruption(re.error(), "RewriteMailboxHeader");
    return;
  }
  auto back = ParseMailboxHeader(*re, "fuzz/rewritten");
  FUZZ_CHECK(back.ok(), "rewritten header does not parse: " + back.status().ToString());
  FUZZ_CHECK(back->uniqueid == "id9", "rewritten uniqueid lost");
  FUZZ_CHECK(!back->dlist_format || back->name == "user.x.Re stored", "rewritten name lost");
  FUZZ_CHECK(back->acl == h->acl && back->user_flags == h->user_flags &&
                 back->quotaroot == h->quotaroot && back->mbtype == h->mbtype,
             "rewrite changed other fields");
}


bool Same(const Dlist& a, const Dlist& b) {
  if (a.kind != b.kind || a.str != b.str || a.items.size() != b.items.size() ||
      a.kv.size() != b.kv.size()) {
    return false;
  }
  for (size_t i = 0; i < a.items.size(); ++i) {
    if (!Same(a.items[i], b.items[i])) return false;
  }
  for (size_t i = 0; i < a.kv.size(); ++i) {
    if (a.kv[i].first != b.kv[i].first || !Same(a.kv[i].second, b.kv[i].second)) return false;
  }
  return true;
}

bool EndsAtom(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' || c == ')' || c == '\0';
}

// A string in dlist syntax. literal_only: always {N}CRLF; otherwise a bare atom when the parser
// would read it back as the same string (as_value: and not as NIL), else a quoted string when
// it has no line break, else a literal.
void PutString(std::string_view s, bool literal_only, bool as_value, std::string* out) {
  if (!literal_only) {
    bool atom = !s.empty() && s.find_first_of("(%)\"{") != 0 && !(as_value && s == "NIL");
    for (char c : s) atom = atom && !EndsAtom(c);
    if (atom) {
      out->append(s);
      return;
    }
    if (s.find_first_of("\r\n") == std::string_view::npos) {
      out->push_back('"');
      for (char c : s) {
        if (c == '"' || c == '\\') out->push_back('\\');
        out->push_back(c);
      }
      out->push_back('"');
      return;
    }
  }
  *out += "{" + std::to_string(s.size()) + "}\r\n";
  out->append(s);
}

void Print(const Dlist& d, bool literal_only, std::string* out) {
  switch (d.kind) {
    case Dlist::Kind::kNil:
      *out += "NIL";
      return;
    case Dlist::Kind::kAtom:
      PutString(d.str, literal_only, true, out);
      return;
    case Dlist::Kind::kList:
      out->push_back('(');
      for (size_t i = 0; i < d.items.size(); ++i) {
        if (i > 0) out->push_back(' ');
        Print(d.items[i], literal_only, out);
      }
      out->push_back(')');
      return;
    case Dlist::Kind::kKvList:
      *out += "%(";
      for (size_t i = 0; i < d.kv.size(); ++i) {
        if (i > 0) out->push_back(' ');
        PutString(d.kv[i].first, literal_only, false, out);
        out->push_back(' ');
        Print(d.kv[i].second, literal_only, out);
      }
      out->push_back(')');
      return;
  }
}

void CheckDlist(std::string_view text) {
  auto d = ParseDlist(text);
  if (!d.ok()) {
    CheckCorruption(d.error(), "ParseDlist");
    return;
  }
  auto printed_back = ParseDlist(PrintDlist(*d));  // the product's printer
  FUZZ_CHECK(printed_back.ok(), "PrintDlist output does not parse: " + printed_back.status().ToString());
  FUZZ_CHECK(Same(*d, *printed_back), "PrintDlist output parses to a different tree");
  for (bool literal_only : {true, false}) {
    std::string printed;
    Print(*d, literal_only, &printed);
    auto again = ParseDlist(printed);
    FUZZ_CHECK(again.ok(), "printed dlist does not parse: " + again.status().ToString());
    FUZZ_CHECK(Same(*d, *again), "printed dlist parses to a different tree");
  }
}

}  // namespace
}  // namespace cyrsync::cyrus

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cyrsync::cyrus;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckHeader(in);
  if (in.substr(0, kMagic.size()) != kMagic) CheckHeader(std::string(kMagic) + std::string(in));
  CheckDlist(in);
  if (in.size() > kMagic.size() && in.substr(0, kMagic.size()) == kMagic) {
    CheckDlist(in.substr(kMagic.size()));
  }
  return 0;
}
