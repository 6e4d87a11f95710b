// Test helpers for the snapshot archive tests: a settable clock, a recording file wrapper, an
// index wrapper to inject faults into, a minimal cyrus.index v17 builder, and small archive
// utilities. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/env.h"
#include "common/hash.h"
#include "cyrus/index.h"
#include "snapshot/archive.h"
#include "snapshot/gzip_member.h"

namespace cyrsync::snapshot::testing {

// NowNanos returns a settable time (seconds).
class ClockEnv : public EnvWrapper {
 public:
  explicit ClockEnv(Env* target, int64_t now = 1700000000) : EnvWrapper(target), now_(now) {}
  int64_t NowNanos() override { return now_.load() * 1000000000; }
  void Set(int64_t seconds) { now_ = seconds; }

 private:
  std::atomic<int64_t> now_;
};

// Forwards every call to another index; tests override the calls they make fail.
class IndexDbWrapper : public IndexDb {
 public:
  explicit IndexDbWrapper(IndexDb* t) : t_(t) {}
  Result<std::vector<RunInfo>> Runs() override { return t_->Runs(); }
  Result<bool> HasFile(std::string_view s) override { return t_->HasFile(s); }
  Result<std::optional<Entry>> Latest(std::string_view n, int64_t a) override {
    return t_->Latest(n, a);
  }
  Result<std::vector<Entry>> LatestUnder(std::string_view p, int64_t a) override {
    return t_->LatestUnder(p, a);
  }
  Result<std::vector<Entry>> AllEntries() override { return t_->AllEntries(); }
  Result<uint64_t> CommittedEnd() override { return t_->CommittedEnd(); }
  Result<int64_t> LastCompaction() override { return t_->LastCompaction(); }
  Status CommitRun(const RunInfo& r, const std::vector<Entry>& e, uint64_t end) override {
    return t_->CommitRun(r, e, end);
  }
  Status BeginRunRecord(const RunInfo& r) override { return t_->BeginRunRecord(r); }
  Status AddRunEntries(const std::vector<Entry>& e) override { return t_->AddRunEntries(e); }
  Status FinishRunRecord(const RunInfo& r, uint64_t end) override {
    return t_->FinishRunRecord(r, end);
  }
  void AbortRunRecord() override { t_->AbortRunRecord(); }
  Status SetLastCompaction(int64_t w) override { return t_->SetLastCompaction(w); }
  Result<TailState> GetTailState() override { return t_->GetTailState(); }
  Status SetTailState(TailState s) override { return t_->SetTailState(s); }

 protected:
  IndexDb* target() const { return t_; }

 private:
  IndexDb* t_;
};

// Records every ReadAt range of files opened through it.
class RecordingEnv : public EnvWrapper {
 public:
  explicit RecordingEnv(Env* target) : EnvWrapper(target) {}
  struct Read {
    uint64_t offset;
    size_t len;
  };
  Result<std::unique_ptr<ReadableFile>> OpenRead(const std::string& p) override {
    ASSIGN_OR_RETURN(auto f, EnvWrapper::OpenRead(p));
    return std::unique_ptr<ReadableFile>(new File(std::move(f), this));
  }
  std::vector<Read> reads() {
    std::lock_guard g(mu_);
    return reads_;
  }
  void Clear() {
    std::lock_guard g(mu_);
    reads_.clear();
  }

 private:
  class File : public ReadableFile {
   public:
    File(std::unique_ptr<ReadableFile> f, RecordingEnv* env) : f_(std::move(f)), env_(env) {}
    Result<size_t> ReadAt(uint64_t offset, std::span<char> out) override {
      {
        std::lock_guard g(env_->mu_);
        env_->reads_.push_back({offset, out.size()});
      }
      return f_->ReadAt(offset, out);
    }
    Result<FileStat> Stat() override { return f_->Stat(); }
    Status Lock(LockMode m) override { return f_->Lock(m); }
    const std::string& path() const override { return f_->path(); }

   private:
    std::unique_ptr<ReadableFile> f_;
    RecordingEnv* env_;
  };
  std::mutex mu_;
  std::vector<Read> reads_;
};

// A message of a test cyrus.index: its uid, body (GUID = sha1 of the body) and flags.
struct TestMessage {
  uint32_t uid;
  std::string body;
  uint32_t flags = cyrus::kFlagSeen;
  bool no_guid = false;  // an all-zero GUID, as before Cyrus had GUIDs
};

inline void PutBE32(std::string* b, size_t off, uint32_t v) {
  std::string t;
  AppendBE32(&t, v);
  b->replace(off, 4, t);
}

// A cyrus.index v17 image (160-byte header, 112-byte records, CRCs sealed), written from
// doc/formats/cyrus_index.md; ParseIndex must accept it.
inline std::string BuildIndexV17(const std::vector<TestMessage>& msgs) {
  constexpr size_t kHdr = 160, kRec = 112;
  std::string b(kHdr, '\0');
  PutBE32(&b, 0, 1);  // generation
  PutBE32(&b, 8, 17);
  PutBE32(&b, 12, kHdr);
  PutBE32(&b, 16, kRec);
  PutBE32(&b, 20, static_cast<uint32_t>(msgs.size()));
  PutBE32(&b, 28, msgs.empty() ? 0 : msgs.back().uid);
  PutBE32(&b, 44, 1700000000);  // uidvalidity
  PutBE32(&b, 84, static_cast<uint32_t>(msgs.size()));
  PutBE32(&b, kHdr - 4, Crc32(std::string_view(b).substr(0, kHdr - 4)));
  for (const TestMessage& m : msgs) {
    std::string r(kRec, '\0');
    PutBE32(&r, 0, m.uid);
    PutBE32(&r, 4, 1700000000);
    PutBE32(&r, 12, static_cast<uint32_t>(m.body.size()));
    PutBE32(&r, 32, m.flags);
    Sha1Digest g = Sha1(m.body);
    if (!m.no_guid) r.replace(60, 20, std::string(reinterpret_cast<const char*>(g.data()), g.size()));
    PutBE32(&r, kRec - 4, Crc32(std::string_view(r).substr(0, kRec - 4)));
    b += r;
  }
  return b;
}

// Entry fields that survive compaction and reindexing (everything but the location).
inline std::string Describe(const Entry& e) {
  return e.name + "|" + std::to_string(static_cast<int>(e.kind)) + "|" + e.link_target + "|" +
         e.sha1 + "|" + std::to_string(e.mtime) + "|" + std::to_string(e.mode) + "|" +
         std::to_string(e.run_id);
}

inline std::map<std::string, std::string> DescribeLatest(IndexDb* idx) {
  std::map<std::string, std::string> out;
  auto all = idx->LatestUnder("");
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  if (!all.ok()) return out;
  for (const Entry& e : *all) out[e.name] = Describe(e);
  return out;
}

// Inflates every member of a file and concatenates their output (the tar stream).
inline std::string InflateAll(Env* env, const std::string& path) {
  auto file = env->OpenRead(path);
  EXPECT_TRUE(file.ok());
  if (!file.ok()) return "";
  auto inflater = MemberInflater::Create();
  FileCursor cur(file->get(), 0);
  std::string out;
  while (true) {
    auto in = cur.Peek();
    if (!in.ok() || in->empty()) break;
    MemberOutcome m = InflateMember(&cur, inflater->get(), [&](std::string_view s) {
      out.append(s);
      return Result<SinkAction>(SinkAction::kContinue);
    });
    EXPECT_TRUE(m.status.ok()) << m.status.ToString();
    if (!m.status.ok()) break;
  }
  return out;
}

inline std::string ReadWhole(Env* env, const std::string& path) {
  auto r = ReadFileToString(env, path);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

inline void WriteWhole(Env* env, const std::string& path, std::string_view data) {
  ASSERT_TRUE(AtomicWriteFile(env, path, data, {}).ok());
}

inline bool HaveGnuTar() { return std::system("test -x /bin/tar") == 0; }

}  // namespace cyrsync::snapshot::testing
