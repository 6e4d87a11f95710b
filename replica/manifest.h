// Manifest: the replica's record of every non-message file it installed (folder metadata,
// server-wide files, symlinks), with the source's stat tuple as copied and the stat tuple of the
// replica's own copy right after installation. It is what the syncer compares against; an entry
// whose local copy no longer matches the disk is dropped rather than trusted. Backed by SQLite
// (schema in doc/formats/manifest.md). Thread-safe: one connection behind a mutex.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/status.h"
#include "protocol/messages.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cyrsync::replica {

struct StoredEntry {
  protocol::ManifestEntry entry;
  protocol::StatTuple local;  // the replica's copy right after it was installed
};

// A row seen in place: the views point into SQLite's row and are valid only during the call.
struct StoredEntryView {
  protocol::ManifestEntryView entry;
  protocol::StatTuple local;
  StoredEntry Copy() const;
};

// The set of message files a folder's installed index names (with cyrus.expunge), as a count
// and the sum (mod 2^64) of a 64-bit mix of each file's location. A directory listing whose
// digest is equal holds the same set, so a --full check needs no read of the index: a lost or
// extra file changes the count or the sum, and distinct sets of equal count share a sum only by
// a 64-bit accident. Unknown (count -1) in a row written before schema version 3.
struct MessageDigest {
  int64_t count = -1;
  uint64_t sum = 0;
  static MessageDigest Empty() { return {0, 0}; }
  bool known() const { return count >= 0; }
  void Add(uint32_t uid, bool archived) {
    uint64_t x = ((uint64_t{uid} << 1) | (archived ? 1 : 0)) + 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;  // splitmix64's finalizer: a bijection
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    sum += x ^ (x >> 31);
    ++count;
  }
  bool operator==(const MessageDigest&) const = default;
};

struct FolderRow {
  std::string folder_key;
  std::string owner;
  std::string intname;
  protocol::WirePath data_dir;
  protocol::WirePath archive_dir;
  MessageDigest messages;  // of the installed index
};

class Manifest {
 public:
  ~Manifest();
  // Opens or creates the database at path (schema version 3; versions 1 and 2 are upgraded,
  // which log, when set, hears about before and after: it rewrites the whole file).
  static Result<std::unique_ptr<Manifest>> Open(const std::string& path,
                                                spdlog::logger* log = nullptr);

  // Replaces the entries for the given paths and the folder row (when set) in one transaction;
  // removes the paths in `removed`.
  Status Apply(const std::vector<StoredEntry>& upserts,
               const std::vector<protocol::WirePath>& removed,
               const std::optional<FolderRow>& folder);
  Status RemoveFolder(const std::string& folder_key);
  Status SetMeta(const std::string& key, const std::string& value);
  // Copies the WAL into the database and truncates it (after a pass: reads stay fast, and a
  // daemon that is killed does not replay a long WAL at its next start). Best effort: a busy
  // reader makes it a no-op.
  void Checkpoint();
  Result<std::optional<std::string>> GetMeta(const std::string& key);
  Status Remove(const std::vector<protocol::WirePath>& paths);

  Result<std::optional<StoredEntry>> Get(const protocol::WirePath& path);
  Result<std::optional<FolderRow>> GetFolder(const std::string& folder_key);
  Result<std::vector<StoredEntry>> FolderEntries(const std::string& folder_key);
  // Forgets the folder's installed files (the folder row stays, its message digest unknown): its
  // next exchange copies them.
  Status RemoveFolderEntries(const std::string& folder_key);
  // Records the folder's message digest when its row has none (a row written before schema
  // version 3, or whose entries were forgotten).
  Status SetMessagesIfUnknown(const std::string& folder_key, const MessageDigest& d);
  // The folder recorded with this data directory, if any.
  Result<std::optional<FolderRow>> FolderAtDir(const protocol::WirePath& data_dir);
  // Up to `limit` entries (owner filter "" = all) whose path comes after `after` (nullptr: from
  // the start), in path order. Pages let a caller send between reads without holding the
  // manifest.
  Result<std::vector<StoredEntry>> Page(const std::string& owner, const protocol::WirePath* after,
                                        size_t limit);
  // Page without copies: fn sees each row in order, while the manifest is held. Returns how
  // many rows it saw.
  Result<size_t> VisitPage(const std::string& owner, const protocol::WirePath* after, size_t limit,
                           const std::function<void(const StoredEntryView&)>& fn);
  // Asks the kernel to read the database files ahead (a hint; a whole-manifest walk follows).
  // A cold walk otherwise reads its B-tree pages one random read at a time.
  void WillNeed() const;

 private:
  Manifest(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status Exec(const char* sql);
  Status CreateOrUpgrade(spdlog::logger* log);
  Status UpgradeLocked(const std::string& version);
  Status UpsertLocked(const StoredEntry& e);
  Status RemoveLocked(const protocol::WirePath& p);
  Result<std::optional<FolderRow>> ReadFolder(void* stmt);  // REQUIRES: mu_ held

  std::mutex mu_;
  sqlite3* db_;
  const std::string path_;
  // Prepared statements by SQL text, kept for the connection's life (the daemon runs the same
  // few queries for every folder). Guarded by mu_.
  std::unordered_map<std::string, sqlite3_stmt*> stmts_;
};

}  // namespace cyrsync::replica
