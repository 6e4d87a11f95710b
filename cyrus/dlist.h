// A parser for Cyrus's dlist text syntax (cyrus-formats.md §8.4): kvlists %(k v ...), lists
// (v ...), atoms, quoted strings, literals {N}CRLF..., NIL. Sans-I/O; untrusted input.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cyrsync::cyrus {

struct Dlist {
  enum class Kind { kAtom, kNil, kList, kKvList };
  // Declared here, defaulted in dlist.cc: the members use Dlist before it is complete.
  Dlist();
  ~Dlist();
  Dlist(const Dlist&);
  Dlist(Dlist&&) noexcept;
  Dlist& operator=(const Dlist&);
  Dlist& operator=(Dlist&&) noexcept;

  Kind kind = Kind::kNil;
  std::string str;                                   // kAtom (atoms, quoted strings, literals)
  std::vector<Dlist> items;                          // kList
  std::vector<std::pair<std::string, Dlist>> kv;     // kKvList, in file order

  // For a kvlist: the value of key, or nullptr.
  const Dlist* Find(std::string_view key) const;
  // For a kvlist: the string value of key, or def when absent / not an atom.
  std::string GetString(std::string_view key, std::string_view def = "") const;
};

// Parses one dlist value from the start of text; trailing whitespace is allowed, other trailing
// bytes are an error. kCorruption with the byte offset on malformed input.
Result<Dlist> ParseDlist(std::string_view text);

// ParseDlist for a kvlist of which only some keys matter (a mailboxes.db record): the pairs of
// the top-level kvlist whose key is not in keys are checked as ParseDlist checks them but left
// out of the result. Any other value is returned whole. Same errors as ParseDlist.
Result<Dlist> ParseDlistKeys(std::string_view text, std::span<const std::string_view> keys);

// Prints v the way Cyrus's dlist_print does (§8.4): a string as an atom where the atom rules
// allow, else quoted, else as a literal {N}CRLF; lists, kvlists and NIL as written.
std::string PrintDlist(const Dlist& v);

}  // namespace cyrsync::cyrus
