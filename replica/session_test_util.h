// Test support for the replica session tests: a temp-dir replica (imapd.conf + Store), a
// hand-written peer driving ServeSession over MakePipePair() with a reply timeout (so a replica
// that waits forever fails the test instead of hanging it), a cyrus.index v17 image builder, and
// a whole-tree snapshot to prove that nothing on disk changed.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/env.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/status.h"
#include "cyrus/config.h"
#include "cyrus/index.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/transport.h"
#include "replica/session.h"
#include "replica/store.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync::replica::test {

namespace fs = std::filesystem;
using protocol::Frame;
using protocol::NeedItem;
using protocol::StatTuple;
using protocol::WirePath;

inline constexpr std::chrono::seconds kReplyTimeout{20};

// ---------------------------------------------------------------------------------------------
// Plain file helpers (std::filesystem / iostreams, independent of the Env under test).

inline void WriteFile(const std::string& path, std::string_view data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(f.good()) << "write " << path;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

inline struct stat LStat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

// ---------------------------------------------------------------------------------------------
// cyrus.index v17 image: 160-byte header, 112-byte records, each sealed with a trailing CRC32
// (cyrus-formats.md §4; offsets as in cyrus/index.cc's layout table).

struct TestRecord {
  uint32_t uid = 0;
  std::string body;         // the message file's content; its SHA-1 is the GUID
  uint32_t system_flags = 0;
};

inline void Put32(std::string* b, size_t off, uint32_t v) {
  std::string tmp;
  AppendBE32(&tmp, v);
  b->replace(off, 4, tmp);
}
inline void Put64(std::string* b, size_t off, uint64_t v) {
  std::string tmp;
  AppendBE64(&tmp, v);
  b->replace(off, 8, tmp);
}
inline void SealCrc(std::string* block) {
  Put32(block, block->size() - 4, Crc32(std::string_view(*block).substr(0, block->size() - 4)));
}

inline std::string BuildIndexV17(const std::vector<TestRecord>& recs, uint32_t generation = 1) {
  std::string h(160, '\0');
  uint32_t exists = 0;
  uint32_t last_uid = 0;
  for (const auto& r : recs) {
    if ((r.system_flags & cyrus::kFlagExpunged) == 0) ++exists;
    last_uid = std::max(last_uid, r.uid);
  }
  Put32(&h, 0, generation);
  Put32(&h, 4, 0);    // format
  Put32(&h, 8, 17);   // minor_version
  Put32(&h, 12, 160); // start_offset
  Put32(&h, 16, 112); // record_size
  Put32(&h, 20, static_cast<uint32_t>(recs.size()));
  Put32(&h, 28, last_uid);
  Put64(&h, 32, 0);                 // quota_mailbox_used
  Put32(&h, 44, 1700000000);        // uidvalidity
  Put32(&h, 60, 0);                 // options
  Put64(&h, 68, 10 + generation);   // highestmodseq
  Put32(&h, 84, exists);
  Put32(&h, 96, 0);                 // header_file_crc
  SealCrc(&h);
  std::string out = h;
  for (const auto& r : recs) {
    std::string b(112, '\0');
    Put32(&b, 0, r.uid);
    Put32(&b, 4, 1600000000 + r.uid);  // internaldate
    Put32(&b, 12, static_cast<uint32_t>(r.body.size()));
    Put32(&b, 32, r.system_flags);
    Sha1Digest g = Sha1(r.body);
    for (size_t i = 0; i < g.size(); ++i) b[60 + i] = static_cast<char>(g[i]);
    Put64(&b, 80, r.uid + 1);  // modseq
    SealCrc(&b);
    out += b;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Whole-tree snapshot: relative path -> description (type, size, inode, mtime and SHA-1 for
// files; target for symlinks). Skips the excluded absolute paths (the state dir) and anything
// under a ".cyrsync-tmp" staging directory.

using Snapshot = std::map<std::string, std::string>;

inline Snapshot TakeSnapshot(const std::string& root, const std::vector<std::string>& exclude) {
  Snapshot out;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string abs = it->path().string();
    const std::string rel = fs::path(abs).lexically_relative(root).string();
    bool skip = false;
    for (const auto& ex : exclude) skip = skip || abs == ex;
    for (const auto& comp : fs::path(rel)) skip = skip || comp == ".cyrsync-tmp";
    struct stat st {};
    if (::lstat(abs.c_str(), &st) != 0) {
      out[rel] = "vanished during snapshot";
      continue;
    }
    if (skip) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    std::string d;
    if (S_ISDIR(st.st_mode)) {
      d = "dir";
    } else if (S_ISLNK(st.st_mode)) {
      d = "symlink -> " + fs::read_symlink(abs, ec).string();
    } else if (S_ISREG(st.st_mode)) {
      std::string content = ReadFile(abs);
      d = "file size=" + std::to_string(st.st_size) + " ino=" + std::to_string(st.st_ino) +
          " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
          std::to_string(st.st_mtim.tv_nsec) + " sha1=" + Sha1Hex(content);
    } else {
      d = "other";
    }
    out[rel] = d;
  }
  if (ec) out["<snapshot error>"] = ec.message();
  return out;
}

// Human-readable difference; empty when equal.
inline std::string DiffSnapshots(const Snapshot& before, const Snapshot& after) {
  std::string out;
  for (const auto& [k, v] : before) {
    auto it = after.find(k);
    if (it == after.end()) {
      out += "  removed: " + k + " (" + v + ")\n";
    } else if (it->second != v) {
      out += "  changed: " + k + "\n      before: " + v + "\n      after:  " + it->second + "\n";
    }
  }
  for (const auto& [k, v] : after) {
    if (!before.count(k)) out += "  added:   " + k + " (" + v + ")\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The hand-written peer (the syncer's side of the pipe).

class Peer {
 public:
  explicit Peer(std::unique_ptr<protocol::Transport> t) : t_(std::move(t)) {}
  protocol::Transport& t() { return *t_; }

  // Send errors are ignored on purpose: after the replica refused something it closes the pipe,
  // and what matters is the reply already queued for us.
  void Send(uint16_t type, std::string_view payload) { (void)t_->Send(type, payload); }
  void SendBody(std::string_view data) { (void)protocol::SendBody(*t_, data); }
  // DATA frames then a DATA_END carrying sha1 (hex) as given.
  void SendBodyWithSha(std::string_view data, const std::string& sha1) {
    if (!data.empty()) Send(protocol::kData, data);
    Send(protocol::kDataEnd, protocol::EncodeString(sha1));
  }

  // Receives one frame; kAborted "timed out" when the replica sends nothing for kReplyTimeout
  // (it then closes our end, which also ends the session on the other side).
  Result<Frame> Recv() {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool fired = false;
    std::thread watchdog([&] {
      std::unique_lock l(mu);
      if (!cv.wait_for(l, kReplyTimeout, [&] { return done; })) {
        fired = true;
        t_->Close();
      }
    });
    auto f = t_->Receive();
    {
      std::lock_guard l(mu);
      done = true;
    }
    cv.notify_all();
    watchdog.join();
    if (fired) return AbortedError("timed out waiting for the replica (hang?)");
    return f;
  }

  // OK -> Ok; ERROR -> its status; anything else -> kCorruption naming the type.
  Status RecvOk() {
    ASSIGN_OR_RETURN(Frame f, Recv());
    if (f.type == protocol::kOk) return Status::Ok();
    if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
    return CorruptionError("expected OK, got type " + std::to_string(f.type));
  }

  Result<Frame> RecvExpect(uint16_t type) {
    ASSIGN_OR_RETURN(Frame f, Recv());
    if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
    if (f.type != type) {
      return CorruptionError("expected type " + std::to_string(type) + ", got " +
                             std::to_string(f.type));
    }
    return f;
  }

  void Close() { t_->Close(); }

 private:
  std::unique_ptr<protocol::Transport> t_;
};

inline Result<protocol::HelloOk> DoHello(Peer& p, const std::string& mode = "sync") {
  protocol::Hello h;
  h.mode = mode;
  p.Send(protocol::kHello, protocol::Encode(h));
  ASSIGN_OR_RETURN(Frame f, p.RecvExpect(protocol::kHelloOk));
  return protocol::DecodeHelloOk(f.payload);
}

inline protocol::FilePut MakeFilePut(const WirePath& path, uint64_t size, const StatTuple& src,
                                     const std::string& owner = "") {
  protocol::FilePut put;
  put.path = path;
  put.owner = owner;
  put.kind = protocol::EntryKind::kFile;
  put.source = src;
  put.size = size;
  return put;
}

inline Status PutFile(Peer& p, const WirePath& path, std::string_view body, const StatTuple& src,
                      const std::string& owner = "") {
  p.Send(protocol::kFilePut, protocol::Encode(MakeFilePut(path, body.size(), src, owner)));
  p.SendBody(body);
  return p.RecvOk();
}

inline Status PutSymlink(Peer& p, const WirePath& path, const std::string& target,
                         const StatTuple& src, const std::string& owner = "") {
  protocol::FilePut put;
  put.path = path;
  put.owner = owner;
  put.kind = protocol::EntryKind::kSymlink;
  put.source = src;
  put.target = target;
  p.Send(protocol::kFilePut, protocol::Encode(put));
  return p.RecvOk();
}

inline Status RemoveFile(Peer& p, const WirePath& path) {
  p.Send(protocol::kFileRemove, protocol::EncodePath(path));
  return p.RecvOk();
}

inline Result<std::vector<protocol::ManifestEntry>> GetManifest(Peer& p,
                                                                const std::string& owner = "") {
  p.Send(protocol::kGetManifest, protocol::EncodeString(owner));
  std::vector<protocol::ManifestEntry> all;
  while (true) {
    ASSIGN_OR_RETURN(Frame f, p.Recv());
    if (f.type == protocol::kError) return protocol::StatusFromError(f.payload);
    if (f.type == protocol::kManifestChunk) {
      ASSIGN_OR_RETURN(auto chunk, protocol::DecodeManifestChunk(f.payload));
      all.insert(all.end(), chunk.begin(), chunk.end());
      continue;
    }
    if (f.type != protocol::kManifestEnd) {
      return CorruptionError("unexpected type in manifest: " + std::to_string(f.type));
    }
    ASSIGN_OR_RETURN(uint64_t total, protocol::DecodeU64(f.payload));
    if (total != all.size()) {
      return CorruptionError("MANIFEST_END total " + std::to_string(total) + " but " +
                             std::to_string(all.size()) + " entries received");
    }
    return all;
  }
}

inline const protocol::ManifestEntry* FindEntry(const std::vector<protocol::ManifestEntry>& v,
                                                const WirePath& path) {
  for (const auto& e : v) {
    if (e.path == path) return &e;
  }
  return nullptr;
}

// A folder for FOLDER_BEGIN: data and archive dir partition-default:<data_rel>, metadata
// cyrus.header + cyrus.index in that directory.
struct TestFolder {
  protocol::FolderBegin fb;
  std::vector<std::string> bodies;  // one per fb.files entry
};

inline TestFolder MakeFolder(const std::string& key, const std::string& data_rel,
                             const std::vector<TestRecord>& recs, const std::string& owner = "bob",
                             uint32_t generation = 1) {
  TestFolder f;
  f.fb.folder_key = key;
  f.fb.owner = owner;
  f.fb.intname = "user." + owner;
  f.fb.data_dir = {"partition-default", data_rel};
  f.fb.archive_dir = f.fb.data_dir;
  std::string header = "\241\002\213\015Cyrus mailbox header\n" + key + "\n";
  std::string index = BuildIndexV17(recs, generation);
  int64_t t = 1700000000000000000 + generation * 1000;
  f.fb.files.push_back({{"partition-default", data_rel + "/cyrus.header"},
                        {header.size(), t, t + 1, 1000 + generation}});
  f.fb.files.push_back({{"partition-default", data_rel + "/cyrus.index"},
                        {index.size(), t + 2, t + 3, 2000 + generation}});
  f.bodies = {header, index};
  return f;
}

inline void SendFolderBegin(Peer& p, const TestFolder& f) {
  p.Send(protocol::kFolderBegin, protocol::Encode(f.fb));
  for (const auto& b : f.bodies) p.SendBody(b);
}

inline Result<std::vector<NeedItem>> RecvNeed(Peer& p) {
  ASSIGN_OR_RETURN(Frame f, p.RecvExpect(protocol::kFolderNeed));
  return protocol::DecodeNeed(f.payload);
}

inline void SendMessage(Peer& p, uint32_t uid, std::string_view body, bool archived = false) {
  protocol::MessagePut mp;
  mp.uid = uid;
  mp.archived = archived;
  mp.size = body.size();
  p.Send(protocol::kMessagePut, protocol::Encode(mp));
  p.SendBody(body);
}

// FOLDER_FLUSH: OK when every install the session queued succeeded, else the first failure.
inline Status Flush(Peer& p) {
  p.Send(protocol::kFolderFlush, "");
  ASSIGN_OR_RETURN(Frame f, p.RecvExpect(protocol::kFolderFlushResult));
  ASSIGN_OR_RETURN(auto res, protocol::DecodeFolderFlushResult(f.payload));
  if (res.failed.empty()) return Status::Ok();
  return AbortedError(res.failed[0].intname + ": " + res.failed[0].error);
}

// FOLDER_COMMIT, then FOLDER_FLUSH: OK only once the folder is installed.
inline Status Commit(Peer& p) {
  p.Send(protocol::kFolderCommit, "");
  RETURN_IF_ERROR(p.RecvOk());
  return Flush(p);
}

inline std::vector<uint32_t> NeedUids(const std::vector<NeedItem>& need) {
  std::vector<uint32_t> out;
  for (const auto& n : need) {
    EXPECT_FALSE(n.archived) << "uid " << n.uid;
    out.push_back(n.uid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Full install: FOLDER_BEGIN, send what FOLDER_NEED asks for (bodies from recs), commit.
inline Status InstallFolder(Peer& p, const TestFolder& f, const std::vector<TestRecord>& recs,
                            std::vector<NeedItem>* need_out = nullptr) {
  SendFolderBegin(p, f);
  ASSIGN_OR_RETURN(auto need, RecvNeed(p));
  if (need_out) *need_out = need;
  for (const auto& n : need) {
    const TestRecord* r = nullptr;
    for (const auto& rec : recs) {
      if (rec.uid == n.uid) r = &rec;
    }
    if (!r) return InternalError("replica asked for unknown uid " + std::to_string(n.uid));
    SendMessage(p, n.uid, r->body, n.archived);
  }
  return Commit(p);
}

// ---------------------------------------------------------------------------------------------
// Fixture: a replica on a temp dir.
//   <tmp>/conf     configdirectory
//   <tmp>/spool    partition-default
//   <tmp>/sieve    sievedir
//   <tmp>/archive  archivepartition-default
//   <tmp>/state    StoreOptions.state_dir
//   <tmp>/outside  not a root: must never be touched through the protocol

class ReplicaFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    conf_dir_ = tmp_.Sub("conf");
    spool_ = tmp_.Sub("spool");
    sieve_ = tmp_.Sub("sieve");
    archive_ = tmp_.Sub("archive");
    outside_ = tmp_.Sub("outside");
    for (const auto& d : {conf_dir_, spool_, sieve_, archive_, outside_}) {
      fs::create_directories(d);
    }
    std::string text = "# test replica\nconfigdirectory: " + conf_dir_ +
                       "\npartition-default: " + spool_ + "\nsievedir: " + sieve_ +
                       "\narchivepartition-default: " + archive_ + "\n";
    auto c = cyrus::ParseImapdConf(text, tmp_.Sub("imapd.conf"));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    conf_ = std::make_unique<cyrus::ImapdConf>(std::move(*c));
    opts_.state_dir = tmp_.Sub("state");
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  void TearDown() override {
    (void)EndSession();
    store_.reset();
  }

  void OpenStore() {
    ASSERT_FALSE(server_.joinable()) << "end the session before reopening the store";
    store_.reset();
    auto s = Store::Open(env_, *conf_, opts_, NullLogger());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  Peer& StartSession() {
    EXPECT_FALSE(server_.joinable());
    auto [client, server] = protocol::MakePipePair();
    server_end_ = std::move(server);
    peer_ = std::make_unique<Peer>(std::move(client));
    session_status_ = Status::Ok();
    server_ = std::thread([this] { session_status_ = ServeSession(*server_end_, *store_); });
    return *peer_;
  }

  // Closes our end and waits for ServeSession to return; returns what it returned.
  Status EndSession() {
    if (!server_.joinable()) return session_status_;
    peer_->Close();
    server_.join();
    return session_status_;
  }

  // Starts a session and greets.
  Peer& Connect() {
    Peer& p = StartSession();
    auto ok = DoHello(p);
    EXPECT_TRUE(ok.ok()) << ok.status().ToString();
    return p;
  }

  std::string Spool(const std::string& rel) const { return spool_ + "/" + rel; }
  std::string Conf(const std::string& rel) const { return conf_dir_ + "/" + rel; }
  std::string Sieve(const std::string& rel) const { return sieve_ + "/" + rel; }
  std::string Archive(const std::string& rel) const { return archive_ + "/" + rel; }
  std::string Outside(const std::string& rel) const { return outside_ + "/" + rel; }

  Snapshot Snap() const { return TakeSnapshot(tmp_.path(), {store_->options().state_dir}); }

  cyrsync::testing::TempDir tmp_;
  Env* env_ = Env::Default();  // a test may wrap it before OpenStore (fault injection)
  std::string conf_dir_, spool_, sieve_, archive_, outside_;
  std::unique_ptr<cyrus::ImapdConf> conf_;
  StoreOptions opts_;
  std::unique_ptr<Store> store_;

  std::unique_ptr<protocol::Transport> server_end_;
  std::unique_ptr<Peer> peer_;
  std::thread server_;
  Status session_status_;
};

}  // namespace cyrsync::replica::test
