// Session: serves one syncer connection against a Store. Messages are dispatched through a
// table {type -> handler}; any handler error is sent to the peer as ERROR and ends the session
// (the stream position is unknown after a failed exchange). Sessions run one per thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>

#include "common/hash.h"
#include "protocol/transport.h"
#include "replica/store.h"

namespace cyrsync::replica {

// The folder installs a sync session queued (Store::InstallAsync) and has not reported yet.
// Shared with their completions, which run on the Store's committer thread.
class PendingInstalls {
 public:
  void Add();
  // One queued install finished; a failure is kept for the next Wait.
  void Done(const std::string& intname, const Status& st);
  // Waits until every queued install finished; returns the failures since the last Wait.
  std::vector<protocol::FolderFlushResult::Failure> Wait();

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  size_t pending_ = 0;
  std::vector<protocol::FolderFlushResult::Failure> failed_;
};

// Runs until the peer closes or an error ends the session. Returns the status that ended it
// (OK for a clean close by the peer).
Status ServeSession(protocol::Transport& t, Store& store);

// Handlers, one per request type (session.cc, folder_handler.cc).
Status HandleGetManifest(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleRestoreBegin(protocol::Transport& t, Store& s, const protocol::Frame& f);
// FOLDER_BEGIN: receives a folder, queues its install and answers OK; FOLDER_FLUSH reports
// what became of the queued installs.
Status HandleFolderBegin(protocol::Transport& t, Store& s,
                         const std::shared_ptr<PendingInstalls>& pending, const protocol::Frame& f);
Status HandleFolderFlush(protocol::Transport& t, Store& s,
                         const std::shared_ptr<PendingInstalls>& pending, const protocol::Frame& f);
Status HandleFolderDelete(protocol::Transport& t, Store& s, const protocol::Frame& f);
// --full: a batch of unchanged folders checked against their installed index in one round trip.
Status HandleFolderCheck(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleFilePut(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleFileRemove(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleGetSignature(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandlePassDone(protocol::Transport& t, Store& s, const protocol::Frame& f);
// Read service (read_handler.cc): consistent reads of this host's spool for snapshots.
Status HandleUserState(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleMessagesFetch(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleFolderFetch(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleMessageFetch(protocol::Transport& t, Store& s, const protocol::Frame& f);
Status HandleFileFetch(protocol::Transport& t, Store& s, const protocol::Frame& f);

// Removes a folder's metadata, message files and (when empty) directories, and its manifest rows.
Status RemoveFolderFiles(Store& s, const std::string& folder_key);

// Writes a received body to a staged file; with kSha1, hashes it as it goes (a message, checked
// against its GUID). Metadata and server files are not hashed: nothing reads that hash.
class FileSink : public protocol::BodySink {
 public:
  enum class Hash { kNone, kSha1 };
  FileSink(std::unique_ptr<WritableFile> f, Hash hash) : f_(std::move(f)), hashing_(hash == Hash::kSha1) {}
  Status Write(std::string_view chunk) override;
  Status Finish();  // close; Store::InstallTogether makes staged files durable
  // REQUIRES: made with Hash::kSha1.
  std::string Sha1HexDigest();

 private:
  std::unique_ptr<WritableFile> f_;
  bool hashing_;
  Sha1Hasher hash_;
};

}  // namespace cyrsync::replica
