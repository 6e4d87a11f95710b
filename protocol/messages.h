// Message types and payload codecs of the cyrsync wire protocol v1 (doc/formats/protocol.md).
// Sans-I/O: Encode* return payload bytes, Decode* parse untrusted payloads (bounds-checked,
// trailing bytes rejected). Paths are not validated here; the receiver does that.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "protocol/frame.h"

namespace cyrsync::protocol {

inline constexpr uint32_t kProtocolVersion = 3;
inline constexpr std::string_view kMagic = "CYRSYNC";
inline constexpr size_t kDataChunk = 1 << 20;

enum MsgType : uint16_t {
  kHello = 1,
  kHelloOk = 2,
  kGetManifest = 10,
  kManifestChunk = 11,
  kManifestEnd = 12,
  kFolderBegin = 20,
  kFolderNeed = 21,
  kMessagePut = 22,
  kMessageMissing = 23,
  kFolderCommit = 24,
  kFolderDelete = 25,
  kFolderCheck = 26,
  kFolderCheckResult = 27,
  kFolderFlush = 28,
  kFolderFlushResult = 29,
  kFilePut = 30,
  kFileRemove = 31,
  kGetSignature = 32,
  kData = 40,
  kDataEnd = 41,
  kDeltaData = 42,
  kOk = 50,
  kUserState = 60,
  kUserStateOk = 61,
  kFolderFetch = 62,
  kMetaFile = 63,
  kMessageFetch = 64,
  kFileFetch = 65,
  kAbsent = 66,
  kMessagesFetch = 67,
  kPassDone = 70,
  kRestoreBegin = 80,
  kRestoreDone = 81,
  kError = 255,
};

struct WirePath {
  std::string root;
  std::string rel;
  bool operator==(const WirePath&) const = default;
  bool operator<(const WirePath& o) const { return root != o.root ? root < o.root : rel < o.rel; }
};

struct StatTuple {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t ino = 0;
  bool operator==(const StatTuple&) const = default;
};

struct Hello {
  std::string magic = std::string(kMagic);
  uint32_t version = kProtocolVersion;
  std::string mode = "sync";
};

struct HelloOk {
  uint32_t version = kProtocolVersion;
  std::string instance_id;
  bool cyrus_running = false;
};

enum class EntryKind : uint8_t { kMeta = 0, kFile = 1, kSymlink = 2 };

struct ManifestEntry {
  WirePath path;
  std::string owner;
  std::string folder_key;
  EntryKind kind = EntryKind::kFile;
  StatTuple source;
  bool unsettled = false;
  uint32_t index_minor = 0;
};

// A ManifestEntry whose strings point into a received payload.
struct ManifestEntryView {
  std::string_view root, rel, owner, folder_key;
  EntryKind kind = EntryKind::kFile;
  StatTuple source;
  bool unsettled = false;
  uint32_t index_minor = 0;
};

inline ManifestEntryView ViewOf(const ManifestEntry& e) {
  return {e.path.root, e.path.rel, e.owner,    e.folder_key,
          e.kind,      e.source,   e.unsettled, e.index_minor};
}

struct FolderFile {
  WirePath path;
  StatTuple source;
};

struct FolderBegin {
  std::string folder_key;
  std::string owner;
  std::string intname;
  WirePath data_dir;
  WirePath archive_dir;
  bool full = false;
  bool unsettled = false;
  std::vector<FolderFile> files;  // bodies follow as DATA* DATA_END each
};

struct NeedItem {
  uint32_t uid = 0;
  bool archived = false;
};

struct MessagePut {
  uint32_t uid = 0;
  bool archived = false;
  uint64_t size = 0;
};

struct FolderDelete {
  std::string folder_key;
  bool force = false;
};

struct FilePut {
  WirePath path;
  std::string owner;
  EntryKind kind = EntryKind::kFile;
  StatTuple source;
  bool unsettled = false;
  uint64_t size = 0;       // kFile
  std::string target;      // kSymlink
};

// Read service (HELLO mode "read"): what a snapshot host sees of one user.
struct StateFile {
  std::string name;  // cyrus.* basename, or archive name "user/seen.db", "sieve/main.bc", ...
  WirePath path;     // user files only
  EntryKind kind = EntryKind::kFile;
  StatTuple stat;
  std::string target;  // symlinks
};

struct FolderState {
  std::string folder_key;
  std::string intname;
  std::string mbtype;
  std::vector<StateFile> files;  // cyrus.header and cyrus.index stat tuples
};

struct UserState {
  int64_t synced_at = 0;  // unix seconds the replica was last synced for this user; 0 unknown
  std::vector<FolderState> folders;
  std::vector<StateFile> user_files;
};

struct MessageFetch {
  std::string folder_key;
  uint32_t uid = 0;
  bool archived = false;
};

// Several messages of one folder; answered one MESSAGE_PUT + body (or ABSENT) each, in order.
inline constexpr size_t kMaxMessagesPerFetch = 1024;
struct MessagesFetch {
  std::string folder_key;
  std::vector<std::pair<uint32_t, bool>> messages;  // (uid, archived)
};

// --full: several unchanged folders checked in one round trip. The replica compares each one's
// directories with its installed cyrus.index and answers with the keys that need a full
// FOLDER_BEGIN exchange (files missing, or anything it cannot tell).
inline constexpr size_t kMaxFoldersPerCheck = 1024;
struct CheckedFolder {
  std::string folder_key;
  WirePath data_dir;
  WirePath archive_dir;
};
struct FolderCheck {
  std::vector<CheckedFolder> folders;
};
struct FolderCheckResult {
  std::vector<std::string> needs_exchange;  // folder keys, a subset of the request's
};

// The folder installs a session queued (each answered OK by FOLDER_COMMIT) that failed.
struct FolderFlushResult {
  struct Failure {
    std::string intname;
    std::string error;
    bool operator==(const Failure&) const = default;
  };
  std::vector<Failure> failed;
};

struct PassDone {
  std::vector<std::string> users;  // empty: every user
  int64_t time = 0;
};

// The answer to a restore's FOLDER_COMMIT: the new folder's uniqueid and its message count.
struct RestoreDone {
  std::string uniqueid;
  uint32_t messages = 0;
};

struct ErrorMsg {
  uint32_t code = 0;
  std::string message;
};

std::string Encode(const Hello& m);
std::string Encode(const HelloOk& m);
std::string Encode(const FolderBegin& m);
std::string Encode(const MessagePut& m);
std::string Encode(const FolderDelete& m);
std::string Encode(const FilePut& m);
std::string Encode(const ErrorMsg& m);
std::string Encode(const UserState& m);
std::string Encode(const StateFile& m);
std::string Encode(const MessageFetch& m);
std::string Encode(const PassDone& m);
std::string Encode(const RestoreDone& m);
std::string Encode(const MessagesFetch& m);
std::string Encode(const FolderCheck& m);
std::string Encode(const FolderCheckResult& m);
Result<FolderCheck> DecodeFolderCheck(std::string_view p);
Result<FolderCheckResult> DecodeFolderCheckResult(std::string_view p);
std::string Encode(const FolderFlushResult& m);
Result<FolderFlushResult> DecodeFolderFlushResult(std::string_view p);
Result<UserState> DecodeUserState(std::string_view p);
Result<StateFile> DecodeStateFile(std::string_view p);
Result<MessageFetch> DecodeMessageFetch(std::string_view p);
Result<MessagesFetch> DecodeMessagesFetch(std::string_view p);
Result<PassDone> DecodePassDone(std::string_view p);
Result<RestoreDone> DecodeRestoreDone(std::string_view p);
std::string EncodeManifestChunk(const std::vector<ManifestEntry>& entries);
// Builds a MANIFEST_CHUNK payload one entry at a time; the views need not outlive Add.
class ManifestChunkWriter {
 public:
  void Add(const ManifestEntryView& e);
  void Add(const ManifestEntry& e);
  uint32_t count() const { return n_; }
  // The payload; leaves the writer empty.
  std::string Finish();

 private:
  PayloadWriter body_;
  uint32_t n_ = 0;
};
std::string EncodeNeed(const std::vector<NeedItem>& items);
std::string EncodeU32(uint32_t v);
std::string EncodeU64(uint64_t v);
std::string EncodeString(std::string_view s);
std::string EncodePath(const WirePath& p);

Result<Hello> DecodeHello(std::string_view p);
Result<HelloOk> DecodeHelloOk(std::string_view p);
Result<FolderBegin> DecodeFolderBegin(std::string_view p);
Result<MessagePut> DecodeMessagePut(std::string_view p);
Result<FolderDelete> DecodeFolderDelete(std::string_view p);
Result<FilePut> DecodeFilePut(std::string_view p);
Result<ErrorMsg> DecodeError(std::string_view p);
Result<std::vector<ManifestEntry>> DecodeManifestChunk(std::string_view p);
// DecodeManifestChunk without copies: fn sees each entry as it is read (its views valid during
// the call). On an error, fn has seen the entries before it.
Status VisitManifestChunk(std::string_view p, const std::function<void(const ManifestEntryView&)>& fn);
Result<std::vector<NeedItem>> DecodeNeed(std::string_view p);
Result<uint32_t> DecodeU32(std::string_view p);
Result<uint64_t> DecodeU64(std::string_view p);
Result<std::string> DecodeString(std::string_view p);
Result<WirePath> DecodePath(std::string_view p);

// Error frame payload from a Status, and back.
std::string EncodeStatus(const Status& s);
Status StatusFromError(std::string_view payload);

}  // namespace cyrsync::protocol
