// Store: the replica's write side. Resolves peer-supplied rooted paths through the replica's own
// imapd.conf (refusing anything outside its roots), stages incoming files, installs them
// atomically through a journal, and keeps the manifest. Thread-safe: sessions on different
// folders may use one Store concurrently.
#pragma once

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/env.h"
#include "common/status.h"
#include "cyrus/config.h"
#include "cyrus/mailbox_cache.h"
#include "cyrus/folder.h"
#include "cyrus/mboxlist.h"
#include "cyrus/tools.h"
#include "protocol/messages.h"
#include "replica/change_watch.h"
#include "replica/manifest.h"

namespace cyrsync::replica {

struct StoreOptions {
  std::string state_dir;      // manifest.sqlite, instance-id, journals; default <conf>/cyrsync
  Owner owner;                // files and directories are created owned by the Cyrus user
  std::string cyrus_pidfile;  // refuse to write while this names a running process ("" = skip)
  uint64_t max_file_size = uint64_t{8} << 30;
  // A daemon beside a live Cyrus (a master slot for snapshots): serves reads only, and reports
  // its data as current.
  bool read_only = false;
  // Accept restore sessions: folders from snapshot archives written as new folders beside a
  // running Cyrus, registered and checked with its tools.
  bool allow_restore = false;
  cyrus::CyrusTools tools;
  // Threads that check the manifest against the disk (one lstat per entry) for each GET_MANIFEST.
  int stat_threads = 16;
  // Watch the checked directories with inotify (replica/change_watch.h), so that a check
  // stats only the files of directories something happened in since the last one.
  bool watch_changes = true;
  // Files of the folder installs queued while a group commits (Store::InstallAsync); about half
  // a kilobyte of memory each.
  size_t max_queued_files = 2048;
};

struct StagedFile {
  std::string staged;  // absolute temp path in the root's staging directory
  std::string final;   // absolute destination
};

class Store {
 public:
  // Creates the state directory and instance id on first use and rolls forward any install
  // journal left by a crash, so a folder is never left half-installed.
  static Result<std::unique_ptr<Store>> Open(Env* env, const cyrus::ImapdConf& conf,
                                             StoreOptions opts,
                                             std::shared_ptr<spdlog::logger> log);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& instance_id() const { return instance_id_; }
  Env* env() const { return env_; }
  Manifest& manifest() { return *manifest_; }
  const StoreOptions& options() const { return opts_; }
  spdlog::logger& log() { return *log_; }
  const cyrus::ImapdConf& conf() const { return conf_; }
  // The mailbox list, reloaded only when mailboxes.db may have changed. Thread-safe.
  Result<std::shared_ptr<const std::vector<cyrus::MailboxEntry>>> Mailboxes();
  // The real folder whose key (uniqueid, or the name when it has none) is key; kNotFound when
  // mailboxes.db lists none. A hash lookup: the read service asks once per message.
  Result<cyrus::Folder> FolderByKey(const std::string& key);
  // The list and the positions in it of the real folders user owns, in list order. A hash
  // lookup: a snapshot of every user asks once per user, and scanning the whole list each time
  // cost users x folders.
  struct UserFolders {
    std::shared_ptr<const std::vector<cyrus::MailboxEntry>> list;
    std::vector<size_t> at;
  };
  Result<UserFolders> FoldersOf(const std::string& user);
  // Held while a restore checks its target name and registers the folder, so two restores
  // into the same new name cannot both succeed.
  std::mutex& restore_mutex() { return restore_mu_; }

  // kFailedPrecondition when the replica's own Cyrus is running.
  Status CheckCyrusStopped() const;
  bool CyrusRunning() const;

  // Resolves a peer path: known root, relative, no "."/".."/empty components, no control
  // characters, not inside the state directory, no symlinked existing ancestor. The final
  // component may be a symlink only for a file that gets replaced (`kFile`), never for a
  // directory (`kDir`). kInvalidArgument otherwise; nothing on disk is touched.
  enum class Target { kFile, kDir };
  Result<std::string> Resolve(const protocol::WirePath& p, Target target = Target::kFile) const;
  // The absolute path of a peer path after Resolve's checks that need no disk access.
  Result<std::string> PeerPath(const protocol::WirePath& p) const;
  // Lists a peer-named directory: Resolve's checks (a symlinked component is kInvalidArgument),
  // in one path walk. kNotFound when the directory is absent.
  Status ScanPeerDir(const protocol::WirePath& dir,
                     const std::function<void(std::string_view, EntryType)>& fn) const;
  // Creates dir (absolute, inside a root) and missing parents owned by the Cyrus user. The
  // deepest existing one is given back to the Cyrus user when it lies below a root and is owned
  // by someone else (left so by a daemon killed between a mkdir and its chown).
  Status EnsureDir(const std::string& dir) const;
  // A fresh temp path in the staging directory of the root that holds `final_path`.
  Result<std::string> NewStagePath(const protocol::WirePath& final_path);

  // Message files are staged inside their own folder directory under a hidden name
  // (".cyrsync-<pid>-<n>", which neither Cyrus nor a spool walk takes for a message), so that
  // installing them is a rename within one directory: no filesystem-wide rename lock, no huge
  // shared staging directory. While an exchange stages there, a note in the state directory
  // names its directories; a daemon killed mid-exchange removes their hidden temp files at its
  // next start (Open), and the note is removed when the exchange ends either way.
  Result<std::string> BeginStagingIn(const std::vector<std::string>& abs_dirs);
  void EndStaging(const std::string& note);
  // A fresh hidden temp path in abs_dir. REQUIRES: abs_dir is covered by a BeginStagingIn note.
  std::string NewStagePathIn(const std::string& abs_dir);
  // A hidden temp file left in a folder directory by an earlier daemon process.
  bool IsStaleStageName(std::string_view name) const;

  // Durability point, on the Store's committer thread. syncfs of the stage directories'
  // filesystems (the staged files are written without fsync), then a journal naming them
  // (fdatasync'ed, with its directory), then renames every staged file over its destination in
  // order; fsyncs the destination directories. After a crash at any point, Open() completes the
  // renames, so the set becomes visible together.
  //
  // Group commit: every set queued while a commit flushes is committed by the next one, with
  // one syncfs, one journal and one fsync per directory (leveldb's write grouping). Each set
  // still becomes visible together; a failed rename fails only its own set, a failed flush
  // fails every set of the group.
  //
  // InstallAsync queues the set and returns at once; it waits only while the queue is full
  // (kMaxQueuedSets sets, or StoreOptions::max_queued_files files: a queued folder keeps its
  // file and message lists in memory until it is installed; a larger set waits for an empty
  // queue). `done` runs on the committer thread once the set is installed or failed (for an
  // empty set, at once on the caller's), and must not install anything itself.
  // InstallTogether waits for its set.
  static constexpr size_t kMaxQueuedSets = 64;
  void InstallAsync(std::vector<StagedFile> files, std::function<void(Status)> done);
  Status InstallTogether(const std::vector<StagedFile>& files);
  // Returns once every set queued so far is installed or failed and its `done` has run.
  void WaitInstalled();
  // Sets queued for commit, the ones committing now included (tests).
  size_t QueuedCommitsForTest();

  // The replica copy's stat tuple (lstat).
  Result<protocol::StatTuple> LocalStat(const std::string& abs) const;
  // True when the manifest entry's local copy is still exactly what was installed.
  bool StillInstalled(const StoredEntry& e) const { return InstalledPath(e).has_value(); }
  // The absolute path of that copy when it is still exactly what was installed, else nullopt.
  // Its path was resolved when it was installed; a replaced ancestor since shows in the file's
  // own stat tuple, so the path needs no second Resolve to be read.
  std::optional<std::string> InstalledPath(const StoredEntry& e) const;
  // The bytes of that copy, read through one open whose fstat is the check; nullopt when it is
  // no longer what was installed or cannot be read.
  std::optional<std::string> ReadInstalled(const StoredEntry& e) const;
  // StillInstalled for many entries (1 = still installed), on up to `threads` threads; entries of
  // one directory that are next to each other (the manifest's path order) share one path walk.
  // With the change watch, each entry's directory is watched (Arm) before its stat, so that
  // QuietDirs can vouch for it at the next check.
  std::vector<char> StillInstalled(std::span<const StoredEntry> entries, int threads) const;
  // Takes in the changes the watch has seen so far (no-op without a watch).
  void PollChanges();
  // For entries in path order: true when the entry's directory is quiet (so the entry is still
  // installed without a stat). Asks the watch once per directory; one per walk, not shared
  // between threads. Always false without a watch.
  class QuietDirs {
   public:
    explicit QuietDirs(const Store& s) : s_(s) {}
    bool operator()(std::string_view root, std::string_view rel);

   private:
    const Store& s_;
    std::string root_, dir_;
    bool valid_ = false, quiet_ = false;
  };
  const ChangeWatch* change_watch() const { return watch_.get(); }
  // The installed copy of path, open for reading, when the manifest says it is still exactly
  // what was installed (a librsync basis); nullptr otherwise.
  struct Installed {
    std::unique_ptr<ReadableFile> file;  // nullptr: no trusted copy
    uint64_t size = 0;
  };
  Installed OpenInstalled(const protocol::WirePath& path);

 private:
  Store(Env* env, const cyrus::ImapdConf& conf, StoreOptions opts,
        std::shared_ptr<spdlog::logger> log)
      : env_(env), conf_(conf), opts_(std::move(opts)), log_(std::move(log)) {}
  Status Init();
  // The root directory of a peer path after Resolve's checks that need no disk access.
  Result<std::string> PeerRoot(const protocol::WirePath& p) const;
  // Takes the state directory's lock (flock of <state_dir>/lock, held for the Store's life):
  // a second daemon or a `recover` on the same replica refuses instead of rolling forward or
  // deleting what a live daemon is writing.
  Status LockStateDir();
  Status RecoverJournals();
  // One syncfs per filesystem holding any of dirs.
  Status SyncFilesystems(const std::set<std::string>& dirs);
  bool StrictlyInsideARoot(const std::string& abs) const;
  Status CleanStaging();
  Status CleanStagingNotes();
  struct CommitRequest {
    std::vector<StagedFile> files;
    std::function<void(Status)> done;
    Status status;
  };
  void CommitLoop();
  void StopCommitter();  // after the queue is empty
  // One durable commit of every set in group; sets each request's status.
  void CommitGroup(const std::vector<CommitRequest*>& group);
  // Renames one set's staged files in order; after a failure removes the rest of the set.
  Status RenameSet(const std::vector<StagedFile>& files, std::set<std::string>& dirs);

  Env* env_;
  const cyrus::ImapdConf& conf_;
  StoreOptions opts_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Manifest> manifest_;
  std::unique_ptr<ChangeWatch> watch_;  // null: every check stats every entry
  int state_lock_fd_ = -1;
  std::string instance_id_;
  std::atomic<uint64_t> seq_{0};
  const std::string pid_ = std::to_string(::getpid());  // names stage files and journals
  std::mutex mailboxes_mu_;
  std::mutex restore_mu_;
  std::mutex commit_mu_;
  std::condition_variable commit_work_;  // a set was queued, or stopping_
  std::condition_variable commit_room_;  // the queue shrank, or a group finished
  std::deque<std::unique_ptr<CommitRequest>> commit_queue_;  // waiting for the next group
  size_t queued_files_ = 0;  // files of the sets in commit_queue_
  size_t committing_ = 0;    // sets of the group being committed now
  bool stopping_ = false;
  std::thread committer_;  // started by the first InstallAsync
  // A mailboxes.db changed this shortly before it was read is read again next time: a change in
  // the same file-time tick (at most 10 ms, HZ >= 100) leaves its stat tuple alone. Short,
  // because the read service asks for the list once per request.
  static constexpr int64_t kMailboxesRacyNs = 20'000'000;
  cyrus::MailboxListCache mailboxes_{kMailboxesRacyNs};
  // Builds by_key_ and by_owner_ for list unless they index it already. mailboxes_mu_ held.
  void IndexLocked(const std::shared_ptr<const std::vector<cyrus::MailboxEntry>>& list);
  std::shared_ptr<const std::vector<cyrus::MailboxEntry>> indexed_;  // list the maps index
  std::unordered_map<std::string, size_t> by_key_;
  std::unordered_map<std::string, std::vector<size_t>> by_owner_;
};

// Serialises a journal (doc/formats/manifest.md): a "cyrsync-journal 2" line, one
// "staged\tfinal" line per file, then "end". The journal is written in place (no temp file and
// rename), so a crash before its fdatasync can cut it short: DecodeJournal returns kAborted
// for a journal without its end line (nothing was renamed under it yet). A journal without the
// first line is a version 1 journal (written atomically, no end line).
std::string EncodeJournal(const std::vector<StagedFile>& files);
// The same for the files of several sets, one set after another (a commit group).
std::string EncodeJournal(std::span<const std::vector<StagedFile>* const> sets);
Result<std::vector<StagedFile>> DecodeJournal(std::string_view text);

}  // namespace cyrsync::replica
