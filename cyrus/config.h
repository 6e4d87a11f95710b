// ImapdConf: the parts of a Cyrus imapd.conf that locate and interpret a spool. Parsed once in
// main and passed down by const reference. Immutable after parsing; thread-safe to share.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"

namespace cyrsync::cyrus {

struct ImapdConf {
  std::string source_path;                      // the file this came from (for messages)
  std::map<std::string, std::string> raw;       // every "key: value", keys lower-cased

  std::string configdirectory;                  // required
  std::string defaultpartition = "default";
  std::map<std::string, std::string> partitions;         // partition-<name>
  std::map<std::string, std::string> metapartitions;     // metapartition-<name>
  std::map<std::string, std::string> archivepartitions;  // archivepartition-<name>
  // metapartition_files. Cyrus 3.6.1's compiled default is empty (man imapd.conf, `cyr_info
  // conf-default`): a metapartition holds only the files listed here.
  std::set<std::string> metapartition_files;
  std::string sievedir;                         // "" when unset
  std::string lockpath;                         // mboxname_lockpath, default <conf>/lock
  std::string mboxlist_db_path;                 // mboxlist_db_path, default <conf>/mailboxes.db
  std::string mboxlist_db = "twoskip";
  std::string seenstate_db = "twoskip";
  std::string subscription_db = "flat";
  std::string quota_db = "quotalegacy";
  bool hashimapspool = false;
  bool fulldirhash = false;
  bool unixhierarchysep = true;   // 3.6 compiled default
  bool altnamespace = true;       // 3.6 compiled default
  bool mailbox_legacy_dirs = false;
  bool archive_enabled = false;
  std::string virtdomains = "off";  // off | userid | on
  std::string defaultdomain;
  std::string deletedprefix = "DELETED";

  // Value of an arbitrary key, or def when unset.
  std::string Get(std::string_view key, std::string_view def = "") const;
  // Absolute directory for a root id (see paths.h): "configdirectory", "sievedir",
  // "partition-<p>", "metapartition-<p>", "archivepartition-<p>", "metadir-<file>-<p>".
  // kNotFound when the config does not define that root.
  Result<std::string> RootDir(std::string_view root_id) const;
};

// Parses imapd.conf text: "key: value" lines, '#' comments, blank lines. Booleans accept
// yes/no/on/off/true/false/1/0. kInvalidArgument names the line number of a malformed line or a
// missing configdirectory.
Result<ImapdConf> ParseImapdConf(std::string_view text, std::string source_path);
Result<ImapdConf> LoadImapdConf(Env* env, const std::string& path);

}  // namespace cyrsync::cyrus
