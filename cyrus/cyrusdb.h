// Readers for Cyrus's key/value database files: twoskip (2.5+ default), skiplist (<= 2.4
// default) and flat (subscriptions) (cyrus-formats.md §9). Sans-I/O: they take the file image
// (read by the caller under the database's fcntl read lock) and return the committed live
// records in key order. Untrusted input: every offset is bounds-checked.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cyrsync::cyrus {

using KvList = std::vector<std::pair<std::string, std::string>>;

// Receives each live record in key order; the views are valid during the call only. A non-OK
// status stops the walk and is returned.
using KvVisitor = std::function<Status(std::string_view key, std::string_view value)>;

enum class DbFormat { kTwoskip, kSkiplist, kFlat, kUnknown };

// Detects the format from the magic; flat (or empty) files are kFlat.
DbFormat DetectDbFormat(std::string_view bytes);

// Committed view: walks level 0 up to current_size, skipping DELETE records; verifies the header
// CRC and each record's head/tail CRC. kCorruption with "<path>: ... at offset <n>".
Result<KvList> ReadTwoskip(std::string_view bytes, std::string_view path);
Result<KvList> ReadSkiplist(std::string_view bytes, std::string_view path);
// key TAB value LF lines, with the 2.5+ 0xFF escapes decoded.
Result<KvList> ReadFlat(std::string_view bytes, std::string_view path);
// Dispatches on DetectDbFormat.
Result<KvList> ReadCyrusDb(std::string_view bytes, std::string_view path);

// The same walks without copying: a 10k-folder mailboxes.db is megabytes of records, and a
// reader that keeps only what it parses out of them need not hold a second copy.
Status VisitTwoskip(std::string_view bytes, std::string_view path, const KvVisitor& visit);
Status VisitSkiplist(std::string_view bytes, std::string_view path, const KvVisitor& visit);
Status VisitFlat(std::string_view bytes, std::string_view path, const KvVisitor& visit);
Status VisitCyrusDb(std::string_view bytes, std::string_view path, const KvVisitor& visit);

}  // namespace cyrsync::cyrus
