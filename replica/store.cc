#include "replica/store.h"

#include <openssl/rand.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>

#include <future>
#include <optional>
#include <set>

#include "common/hash.h"
#include "common/parallel.h"

namespace cyrsync::replica {
namespace {

constexpr const char* kStageDirName = ".cyrsync-tmp";
constexpr std::string_view kInDirStagePrefix = ".cyrsync-";
constexpr std::string_view kStagingNotePrefix = "staging-";

bool AllDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// ".cyrsync-<pid>-<n>": the pid, or an empty view when name is not an in-directory temp name.
std::string_view StagePid(std::string_view name) {
  if (name.rfind(kInDirStagePrefix, 0) != 0) return {};
  std::string_view rest = name.substr(kInDirStagePrefix.size());
  size_t dash = rest.find('-');
  if (dash == std::string_view::npos || !AllDigits(rest.substr(0, dash)) ||
      !AllDigits(rest.substr(dash + 1))) {
    return {};
  }
  return rest.substr(0, dash);
}

protocol::StatTuple ToTuple(const FileStat& st) {
  return {st.size, st.mtime_ns, st.ctime_ns, st.ino};
}

Status CheckRel(std::string_view rel) {
  if (rel.empty()) return InvalidArgumentError("empty path");
  if (rel.front() == '/') return InvalidArgumentError("absolute path refused: " + std::string(rel));
  for (unsigned char c : rel) {
    // Control characters (NUL, TAB, LF, ...) have no place in a Cyrus path and would let a
    // peer forge lines of the install journal.
    if (c < 0x20 || c == 0x7f) return InvalidArgumentError("control character in path refused");
  }
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string_view::npos) end = rel.size();
    std::string_view c = rel.substr(start, end - start);
    if (c.empty() || c == "." || c == ".." || c.size() > 255 || c == kStageDirName) {
      return InvalidArgumentError("path component refused in " + std::string(rel));
    }
    start = end + 1;
  }
  return Status::Ok();
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  return HexEncode(raw);
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(Env* env, const cyrus::ImapdConf& conf,
                                           StoreOptions opts,
                                           std::shared_ptr<spdlog::logger> log) {
  if (opts.state_dir.empty()) opts.state_dir = JoinPath(conf.configdirectory, "cyrsync");
  std::unique_ptr<Store> s(new Store(env, conf, std::move(opts), std::move(log)));
  RETURN_IF_ERROR(s->Init());
  return s;
}

Store::~Store() {
  StopCommitter();  // installs every queued set first: their senders were told OK
  manifest_.reset();
  if (state_lock_fd_ >= 0) ::close(state_lock_fd_);
}

Status Store::LockStateDir() {
  const std::string path = JoinPath(opts_.state_dir, "lock");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError("open " + path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) return PosixError("lock " + path, err);
    return FailedPreconditionError("another cyrsync serve or recover is using the state directory " +
                                   opts_.state_dir + " (" + path + " is locked)");
  }
  state_lock_fd_ = fd;
  return Status::Ok();
}

Status Store::Init() {
  RETURN_IF_ERROR(MakeDirs(env_, opts_.state_dir, 0700));
  RETURN_IF_ERROR(LockStateDir());
  const std::string id_path = JoinPath(opts_.state_dir, "instance-id");
  auto id = ReadFileToString(env_, id_path);
  if (id.ok() && id->size() >= 32) {
    instance_id_ = id->substr(0, 32);
  } else {
    instance_id_ = RandomHex(16);
    RETURN_IF_ERROR(AtomicWriteFile(env_, id_path, instance_id_, {}));
  }
  ASSIGN_OR_RETURN(manifest_,
                   Manifest::Open(JoinPath(opts_.state_dir, "manifest.sqlite"), log_.get()));
  RETURN_IF_ERROR(RecoverJournals());
  if (opts_.watch_changes && !opts_.read_only) {
    auto w = ChangeWatch::Open(log_.get());
    if (w.ok()) {
      watch_ = std::move(*w);
    } else {
      log_->warn("no change watch, every check stats every file error=\"{}\"",
                 w.error().ToString());
    }
  }
  return CleanStaging();
}

void Store::PollChanges() {
  if (watch_) watch_->Poll();
}

Status Store::RecoverJournals() {
  ASSIGN_OR_RETURN(auto entries, env_->ListDir(opts_.state_dir));
  for (const auto& e : entries) {
    if (e.name.rfind("journal-", 0) != 0 || e.name.find(".cyrsync-tmp") != std::string::npos) {
      continue;
    }
    const std::string path = JoinPath(opts_.state_dir, e.name);
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(env_, path));
    auto files = DecodeJournal(text);
    if (!files.ok()) {
      // Cut short by a crash before its fdatasync: nothing was renamed under it. (Staged files
      // are removed by CleanStaging; the source copies the set again.)
      log_->warn("install journal incomplete, dropped journal={} error=\"{}\"", path,
                 files.error().ToString());
      RETURN_IF_ERROR(env_->Remove(path));
      continue;
    }
    std::set<std::string> dirs;
    for (const auto& f : *files) {
      Status st = env_->Rename(f.staged, f.final);
      if (!st.ok() && st.code() != Code::kNotFound) {
        // Never block the daemon's start: the folder stays unrecorded and is copied again.
        log_->error("install journal entry failed journal={} error=\"{}\"", path, st.ToString());
        (void)env_->Remove(f.staged);
      }
      dirs.insert(Dirname(f.final));
    }
    for (const auto& d : dirs) RETURN_IF_ERROR(env_->SyncDir(d));
    RETURN_IF_ERROR(env_->Remove(path));
    log_->warn("install journal rolled forward journal={} files={}", path, files->size());
  }
  return Status::Ok();
}

Status Store::CleanStaging() {
  for (const auto& [key, dir] : conf_.raw) {
    auto root = conf_.RootDir(key);
    if (!root.ok()) continue;
    const std::string stage = JoinPath(*root, kStageDirName);
    auto ls = env_->ListDir(stage);
    if (!ls.ok()) continue;
    for (const auto& e : *ls) (void)env_->Remove(JoinPath(stage, e.name));
  }
  return CleanStagingNotes();
}

// Runs after RecoverJournals: a temp file a journal named has been renamed by now, so every
// hidden temp file still in a noted directory belongs to an exchange that never installed.
Status Store::CleanStagingNotes() {
  ASSIGN_OR_RETURN(auto entries, env_->ListDir(opts_.state_dir));
  for (const auto& e : entries) {
    if (e.name.rfind(kStagingNotePrefix, 0) != 0) continue;
    const std::string note = JoinPath(opts_.state_dir, e.name);
    auto text = ReadFileToString(env_, note);
    const std::string dirs = text.ok() ? *text : std::string();
    size_t removed = 0;
    for (std::string_view rest = dirs; !rest.empty();) {
      size_t nl = rest.find('\n');
      std::string dir(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      auto ls = dir.empty() ? Result<std::vector<DirEntry>>(std::vector<DirEntry>{})
                            : env_->ListDir(dir);
      if (!ls.ok()) continue;
      for (const auto& f : *ls) {
        if (f.type != EntryType::kFile || StagePid(f.name).empty()) continue;
        removed += env_->Remove(JoinPath(dir, f.name)).ok();
      }
    }
    log_->warn("staging note of an interrupted exchange cleaned note={} temp_files_removed={}",
               note, removed);
    RETURN_IF_ERROR(env_->Remove(note));
  }
  return Status::Ok();
}

Result<std::string> Store::BeginStagingIn(const std::vector<std::string>& abs_dirs) {
  std::string text;
  for (const auto& d : abs_dirs) text += d + "\n";
  const std::string note = JoinPath(
      opts_.state_dir, std::string(kStagingNotePrefix) + pid_ + "-" + std::to_string(++seq_));
  // No fsync: the note guards against a killed process; after a power loss a hidden temp file
  // may survive, and the next readdir of its folder (a --full pass) removes it.
  ASSIGN_OR_RETURN(auto f, env_->NewWritable(note, 0600));
  RETURN_IF_ERROR(f->Append(text));
  RETURN_IF_ERROR(f->Close());
  return note;
}

void Store::EndStaging(const std::string& note) {
  if (!note.empty()) (void)env_->Remove(note);
}

std::string Store::NewStagePathIn(const std::string& abs_dir) {
  return JoinPath(abs_dir, std::string(kInDirStagePrefix) + pid_ + "-" + std::to_string(++seq_));
}

bool Store::IsStaleStageName(std::string_view name) const {
  std::string_view pid = StagePid(name);
  return !pid.empty() && pid != pid_;
}

bool Store::CyrusRunning() const {
  if (opts_.cyrus_pidfile.empty()) return false;
  auto text = ReadFileToString(env_, opts_.cyrus_pidfile);
  if (!text.ok()) return false;
  long pid = std::strtol(text->c_str(), nullptr, 10);
  if (pid <= 1) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  auto stat = ReadFileToString(env_, "/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  auto close = stat->rfind(')');
  // A zombie master has exited; its parent has not reaped it yet.
  return !(close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] == 'Z');
}

Status Store::CheckCyrusStopped() const {
  if (CyrusRunning()) {
    return FailedPreconditionError("the replica's Cyrus is running (pid file " +
                                   opts_.cyrus_pidfile +
                                   "); stop it before syncing into this replica");
  }
  return Status::Ok();
}

Result<std::string> Store::PeerRoot(const protocol::WirePath& p) const {
  auto root = conf_.RootDir(p.root);
  if (!root.ok()) return InvalidArgumentError("unknown root refused: " + p.root);
  RETURN_IF_ERROR(CheckRel(p.rel));
  const std::string abs = JoinPath(*root, p.rel);
  const std::string& state = opts_.state_dir;
  if (abs == state || abs.rfind(state + "/", 0) == 0) {
    return InvalidArgumentError("path inside the replica's state directory refused: " + p.rel);
  }
  return *root;
}

Result<std::string> Store::PeerPath(const protocol::WirePath& p) const {
  ASSIGN_OR_RETURN(std::string root, PeerRoot(p));
  return JoinPath(root, p.rel);
}

Status Store::ScanPeerDir(const protocol::WirePath& dir,
                          const std::function<void(std::string_view, EntryType)>& fn) const {
  ASSIGN_OR_RETURN(std::string root, PeerRoot(dir));
  return env_->ScanDirBeneath(root, dir.rel, fn);
}

Result<std::string> Store::Resolve(const protocol::WirePath& p, Target target) const {
  ASSIGN_OR_RETURN(std::string root, PeerRoot(p));
  const std::string abs = JoinPath(root, p.rel);
  // A missing component (or any other failure to look further) ends the check: the rest is
  // created by this daemon.
  auto st = env_->StatBeneath(root, p.rel);
  if (!st.ok()) {
    if (st.error().code() == Code::kInvalidArgument) return st.error();
    return abs;
  }
  if (st->IsSymlink() && target != Target::kFile) {
    return InvalidArgumentError("path through a symlink refused: " + abs);
  }
  if (target == Target::kFile && st->IsDir()) {
    return InvalidArgumentError("a directory is in the way of file " + p.rel);
  }
  return abs;
}

bool Store::StrictlyInsideARoot(const std::string& abs) const {
  for (const auto& [key, value] : conf_.raw) {
    auto root = conf_.RootDir(key);
    if (root.ok() && abs.size() > root->size() + 1 && abs.compare(0, root->size(), *root) == 0 &&
        abs[root->size()] == '/') {
      return true;
    }
  }
  return false;
}

Status Store::EnsureDir(const std::string& dir) const {
  if (!opts_.owner.set) return MakeDirs(env_, dir, 0750, opts_.owner);
  std::vector<std::string> missing;  // dir and the parents it lacks, deepest first
  std::string cur = dir;
  Result<FileStat> st = env_->Stat(cur);
  while (!st.ok() && st.error().code() == Code::kNotFound && cur != "/" && !cur.empty()) {
    missing.push_back(cur);
    cur = Dirname(cur);
    st = env_->Stat(cur);
  }
  if (!st.ok()) return st.error().WithContext("stat " + cur);
  if (!st->IsDir()) return FailedPreconditionError("not a directory: " + cur);
  // A daemon killed between a mkdir and its chown left this directory owned by root, where the
  // Cyrus user cannot enter: made ours again (only below a root, never a root or above it).
  if (st->uid != opts_.owner.uid && StrictlyInsideARoot(cur)) {
    log_->warn("directory not owned by the Cyrus user, repaired dir={} uid={}", cur, st->uid);
    RETURN_IF_ERROR(env_->Chown(cur, opts_.owner.uid, opts_.owner.gid));
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    RETURN_IF_ERROR(env_->MakeDir(*it, 0750));  // an existing one (a race) is fine
    RETURN_IF_ERROR(env_->Chown(*it, opts_.owner.uid, opts_.owner.gid));
  }
  return Status::Ok();
}

Result<std::string> Store::NewStagePath(const protocol::WirePath& final_path) {
  auto root = conf_.RootDir(final_path.root);
  if (!root.ok()) return InvalidArgumentError("unknown root refused: " + final_path.root);
  const std::string stage = JoinPath(*root, kStageDirName);
  RETURN_IF_ERROR(EnsureDir(stage));
  return JoinPath(stage, pid_ + "-" + std::to_string(++seq_));
}

Status Store::SyncFilesystems(const std::set<std::string>& dirs) {
  std::set<uint64_t> done;
  for (const auto& d : dirs) {
    auto st = env_->Stat(d);
    if (st.ok() && !done.insert(st->dev).second) continue;
    RETURN_IF_ERROR(env_->SyncFileSystem(d));
  }
  return Status::Ok();
}

Status Store::InstallTogether(const std::vector<StagedFile>& files) {
  if (files.empty()) return Status::Ok();
  std::promise<Status> result;
  std::future<Status> installed = result.get_future();
  InstallAsync(files, [&result](Status st) { result.set_value(std::move(st)); });
  return installed.get();
}

void Store::InstallAsync(std::vector<StagedFile> files, std::function<void(Status)> done) {
  if (files.empty()) return done(Status::Ok());
  auto req = std::make_unique<CommitRequest>(CommitRequest{std::move(files), std::move(done), {}});
  const size_t n = req->files.size();
  std::unique_lock lock(commit_mu_);
  commit_room_.wait(lock, [&] {
    return commit_queue_.empty() ||
           (commit_queue_.size() < kMaxQueuedSets && queued_files_ + n <= opts_.max_queued_files);
  });
  if (!committer_.joinable()) committer_ = std::thread([this] { CommitLoop(); });
  queued_files_ += n;
  commit_queue_.push_back(std::move(req));
  commit_work_.notify_one();
}

void Store::CommitLoop() {
  std::unique_lock lock(commit_mu_);
  while (true) {
    commit_work_.wait(lock, [&] { return stopping_ || !commit_queue_.empty(); });
    if (commit_queue_.empty()) return;  // stopping, and nothing left to install
    // Every set queued while the previous group flushed commits now, together.
    std::vector<std::unique_ptr<CommitRequest>> group;
    while (!commit_queue_.empty()) {
      group.push_back(std::move(commit_queue_.front()));
      commit_queue_.pop_front();
    }
    committing_ = group.size();
    queued_files_ = 0;
    commit_room_.notify_all();
    lock.unlock();
    std::vector<CommitRequest*> sets;
    for (auto& r : group) sets.push_back(r.get());
    CommitGroup(sets);
    for (auto& r : group) r->done(std::move(r->status));
    group.clear();
    lock.lock();
    committing_ = 0;
    commit_room_.notify_all();
  }
}

void Store::WaitInstalled() {
  std::unique_lock lock(commit_mu_);
  commit_room_.wait(lock, [&] { return commit_queue_.empty() && committing_ == 0; });
}

void Store::StopCommitter() {
  {
    std::lock_guard lock(commit_mu_);
    stopping_ = true;
  }
  commit_work_.notify_all();
  if (committer_.joinable()) committer_.join();
}

size_t Store::QueuedCommitsForTest() {
  std::lock_guard lock(commit_mu_);
  return commit_queue_.size() + committing_;
}

void Store::CommitGroup(const std::vector<CommitRequest*>& group) {
  auto fail_all = [&](const Status& st) {
    for (CommitRequest* r : group) {
      if (r->status.ok()) r->status = st;
    }
  };
  // 1. The staged files were written without fsyncs of their own: one syncfs per filesystem
  //    makes their data durable. 2. Only then is the journal made durable (its data and its
  //    directory entry), so a journal that survives a crash never names data that did not.
  std::set<std::string> stage_dirs;
  std::vector<const std::vector<StagedFile>*> sets;
  for (const CommitRequest* r : group) {
    for (const auto& f : r->files) stage_dirs.insert(Dirname(f.staged));
    sets.push_back(&r->files);
  }
  if (Status st = SyncFilesystems(stage_dirs); !st.ok()) return fail_all(st);
  const std::string journal =
      JoinPath(opts_.state_dir, "journal-" + pid_ + "-" + std::to_string(++seq_));
  Status written = [&]() -> Status {
    ASSIGN_OR_RETURN(auto jf, env_->NewWritable(journal, 0600));
    RETURN_IF_ERROR(jf->Append(EncodeJournal(sets)));
    RETURN_IF_ERROR(jf->Sync());
    RETURN_IF_ERROR(jf->Close());
    return env_->SyncDir(opts_.state_dir);
  }();
  if (!written.ok()) {
    (void)env_->Remove(journal);
    return fail_all(written);
  }
  std::set<std::string> dirs;
  for (CommitRequest* r : group) r->status = RenameSet(r->files, dirs);
  // A failed set is not recorded in the manifest, so the source sends it again.
  for (const auto& d : dirs) {
    if (Status st = env_->SyncDir(d); !st.ok()) return fail_all(st);
  }
  if (Status st = env_->Remove(journal); !st.ok()) fail_all(st);
}

Status Store::RenameSet(const std::vector<StagedFile>& files, std::set<std::string>& dirs) {
  Status failed;
  for (const auto& f : files) {
    Status st = failed.ok() ? env_->Rename(f.staged, f.final) : failed;
    if (!st.ok()) {
      failed = st;
      (void)env_->Remove(f.staged);
      continue;
    }
    dirs.insert(Dirname(f.final));
  }
  return failed;
}

Result<protocol::StatTuple> Store::LocalStat(const std::string& abs) const {
  ASSIGN_OR_RETURN(FileStat st, env_->Stat(abs));
  return ToTuple(st);
}

std::optional<std::string> Store::InstalledPath(const StoredEntry& e) const {
  // The path was checked when it was installed; a changed or replaced ancestor shows in the
  // file's own stat tuple, so one lstat suffices (this runs for every entry on every pass).
  auto root = conf_.RootDir(e.entry.path.root);
  if (!root.ok() || !CheckRel(e.entry.path.rel).ok()) return std::nullopt;
  std::string abs = JoinPath(*root, e.entry.path.rel);
  auto st = LocalStat(abs);
  if (!st.ok() || !(*st == e.local)) return std::nullopt;
  return abs;
}

std::optional<std::string> Store::ReadInstalled(const StoredEntry& e) const {
  auto root = conf_.RootDir(e.entry.path.root);
  if (!root.ok() || !CheckRel(e.entry.path.rel).ok()) return std::nullopt;
  auto f = env_->OpenRead(JoinPath(*root, e.entry.path.rel));  // O_NOFOLLOW
  if (!f.ok()) return std::nullopt;
  auto st = (*f)->Stat();
  if (!st.ok() || !(ToTuple(*st) == e.local)) return std::nullopt;
  auto bytes = (*f)->ReadAll();
  if (!bytes.ok()) return std::nullopt;
  return std::move(*bytes);
}

namespace {

std::string_view RelDir(std::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : rel.substr(0, slash);
}

// The directory an entry is statted from: the parent of its own directory, so a folder's files
// and the folders beside it (a hash directory of the UUID layout) share one walk of its path.
std::string_view StatBase(std::string_view rel) { return RelDir(RelDir(rel)); }

// Entries per run at most (about 16 folders): a by-name spool without hashing keeps every
// INBOX under one directory, and the runs of a page must still spread over the threads.
constexpr size_t kMaxRun = 48;

// [begin, end) ranges of consecutive entries with one stat base.
std::vector<std::pair<size_t, size_t>> BaseRuns(std::span<const StoredEntry> entries) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < entries.size();) {
    const auto& p = entries[i].entry.path;
    size_t j = i + 1;
    while (j < entries.size() && j - i < kMaxRun && entries[j].entry.path.root == p.root &&
           StatBase(entries[j].entry.path.rel) == StatBase(p.rel)) {
      ++j;
    }
    runs.emplace_back(i, j);
    i = j;
  }
  return runs;
}

}  // namespace

bool Store::QuietDirs::operator()(std::string_view root, std::string_view rel) {
  if (!s_.watch_ || !CheckRel(rel).ok()) return false;
  const std::string_view dir = RelDir(rel);
  if (valid_ && root == root_ && dir == dir_) return quiet_;
  root_.assign(root);
  dir_.assign(dir);
  valid_ = true;
  auto abs = s_.conf_.RootDir(root_);
  quiet_ = abs.ok() && s_.watch_->Quiet(dir_.empty() ? *abs : JoinPath(*abs, dir_));
  return quiet_;
}

std::vector<char> Store::StillInstalled(std::span<const StoredEntry> entries, int threads) const {
  std::vector<char> ok(entries.size(), 0);
  const auto runs = BaseRuns(entries);
  ParallelFor(runs.size(), threads, [&](size_t r) {
    auto [begin, end] = runs[r];
    const auto& first = entries[begin].entry.path;
    auto root = conf_.RootDir(first.root);
    if (!root.ok()) return;
    std::string_view base = StatBase(first.rel);
    std::vector<size_t> which;
    std::vector<std::string> names;
    std::optional<std::string_view> dir;  // entries of one directory come together
    for (size_t i = begin; i < end; ++i) {
      const auto& rel = entries[i].entry.path.rel;
      if (!CheckRel(rel).ok()) continue;
      if (watch_ && dir != RelDir(rel)) {
        dir = RelDir(rel);
        // Watched before the stat below: a change after the stat shows as an event.
        (void)watch_->Arm(*root, *dir);
      }
      which.push_back(i);
      names.push_back(base.empty() ? rel : rel.substr(base.size() + 1));
    }
    if (which.empty()) return;
    auto st = env_->StatInDir(base.empty() ? *root : JoinPath(*root, std::string(base)), names);
    for (size_t k = 0; k < which.size(); ++k) {
      ok[which[k]] = st[k].ok() && ToTuple(*st[k]) == entries[which[k]].local;
    }
  }, 8);
  return ok;
}

Store::Installed Store::OpenInstalled(const protocol::WirePath& path) {
  auto e = manifest_->Get(path);
  if (!e.ok() || !*e || (*e)->entry.kind == protocol::EntryKind::kSymlink) return {};
  auto abs = InstalledPath(**e);
  if (!abs) return {};
  auto f = env_->OpenRead(*abs);
  if (!f.ok()) return {};
  return {std::move(*f), (*e)->local.size};
}

Result<std::shared_ptr<const std::vector<cyrus::MailboxEntry>>> Store::Mailboxes() {
  std::lock_guard g(mailboxes_mu_);
  return mailboxes_.Get(env_, conf_);
}

void Store::IndexLocked(const std::shared_ptr<const std::vector<cyrus::MailboxEntry>>& list) {
  if (indexed_ == list) return;
  by_key_.clear();
  by_owner_.clear();
  for (size_t i = 0; i < list->size(); ++i) {
    const auto& mb = (*list)[i];
    if (!mb.IsReal()) continue;
    by_key_.emplace(mb.uniqueid.empty() ? mb.intname : mb.uniqueid, i);
    if (std::string owner = mb.Owner(); !owner.empty()) by_owner_[owner].push_back(i);
  }
  indexed_ = list;
}

Result<cyrus::Folder> Store::FolderByKey(const std::string& key) {
  ASSIGN_OR_RETURN(auto list, Mailboxes());
  std::lock_guard g(mailboxes_mu_);
  IndexLocked(list);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return NotFoundError("no folder " + key);
  return cyrus::DescribeFolder(conf_, (*list)[it->second]);
}

Result<Store::UserFolders> Store::FoldersOf(const std::string& user) {
  ASSIGN_OR_RETURN(auto list, Mailboxes());
  std::lock_guard g(mailboxes_mu_);
  IndexLocked(list);
  UserFolders out{list, {}};
  if (auto it = by_owner_.find(user); it != by_owner_.end()) out.at = it->second;
  return out;
}

namespace {
constexpr std::string_view kJournalHeader = "cyrsync-journal 2";
constexpr std::string_view kJournalEnd = "end";
}  // namespace

std::string EncodeJournal(std::span<const std::vector<StagedFile>* const> sets) {
  std::string out = std::string(kJournalHeader) + "\n";
  for (const auto* files : sets) {
    for (const auto& f : *files) out.append(f.staged).append("\t").append(f.final).append("\n");
  }
  return out + std::string(kJournalEnd) + "\n";
}

std::string EncodeJournal(const std::vector<StagedFile>& files) {
  const std::vector<StagedFile>* one = &files;
  return EncodeJournal(std::span(&one, 1));
}

Result<std::vector<StagedFile>> DecodeJournal(std::string_view text) {
  const bool v2 = text.rfind(std::string(kJournalHeader) + "\n", 0) == 0;
  if (v2) text.remove_prefix(kJournalHeader.size() + 1);
  std::vector<StagedFile> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return AbortedError("journal: unterminated line");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (v2 && line == kJournalEnd) {
      if (!text.empty()) return CorruptionError("journal: bytes after the end line");
      return out;
    }
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos) return CorruptionError("journal: line without TAB");
    out.push_back({std::string(line.substr(0, tab)), std::string(line.substr(tab + 1))});
  }
  if (v2) return AbortedError("journal: no end line (cut short before its syncfs)");
  return out;
}

}  // namespace cyrsync::replica
