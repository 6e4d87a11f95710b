// cyrus.header reader: both the text format (<= 3.4) and the 3.6+ dlist format
// (cyrus-formats.md §3). Sans-I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cyrsync::cyrus {

struct MailboxHeader {
  bool dlist_format = false;
  std::string mbtype;     // 3.6+ "T"; "" in the text format
  std::string name;       // 3.6+ "N" internal name; "" in the text format
  std::string uniqueid;
  std::string quotaroot;
  std::vector<std::string> user_flags;  // slot i -> flag name, "" for an undefined slot
  std::string acl;                      // "id\trights\t..." (text) or flattened dlist ACL
};

// kCorruption naming `path` on a bad magic or malformed body.
Result<MailboxHeader> ParseMailboxHeader(std::string_view bytes, std::string_view path);

// The same header for a copy of the folder under another name and uniqueid: in the dlist format
// N and I are replaced (other keys kept in order); the text format has no name, and its
// uniqueid after the quotaroot is replaced. kCorruption as ParseMailboxHeader.
Result<std::string> RewriteMailboxHeader(std::string_view bytes, std::string_view path,
                                         std::string_view name, std::string_view uniqueid);

}  // namespace cyrsync::cyrus
