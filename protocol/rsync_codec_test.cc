#include "protocol/rsync_codec.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "protocol/messages.h"
#include "protocol/transport.h"

namespace cyrsync::protocol {
namespace {

// A ReadableFile over memory, for the basis side of a patch.
class MemFile final : public ReadableFile {
 public:
  explicit MemFile(std::string data) : data_(std::move(data)) {}
  Result<size_t> ReadAt(uint64_t off, std::span<char> out) override {
    if (off >= data_.size()) return size_t{0};
    size_t n = std::min<size_t>(out.size(), data_.size() - off);
    std::copy_n(data_.data() + off, n, out.data());
    return n;
  }
  Result<FileStat> Stat() override {
    FileStat st;
    st.size = data_.size();
    return st;
  }
  Status Lock(LockMode) override { return Status::Ok(); }
  const std::string& path() const override { return path_; }

 private:
  std::string data_;
  std::string path_ = "<memory>";
};

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class StringSink final : public BodySink {
 public:
  Status Write(std::string_view c) override {
    out.append(c);
    return Status::Ok();
  }
  std::string out;
};

TEST(RsyncCodecTest, AppendOnlyFileTravelsAsSmallDelta) {
  std::string old_data = RandomBytes(1 << 20, 1);
  std::string new_data = old_data + RandomBytes(3000, 2);  // like a cyrus.cache append
  MemFile basis(old_data);
  auto sig = FileSignature(basis);
  ASSERT_TRUE(sig.ok()) << sig.error().ToString();

  auto pipes = MakePipePair();  // named ends: clang 14 cannot capture structured bindings
  auto& a = pipes.first;
  auto& b = pipes.second;
  MemFile new_file(new_data);
  std::thread sender([&] { ASSERT_TRUE(SendFileDelta(*a, new_file, *sig).ok()); });
  StringSink sink;
  auto got = ReceiveBody(*b, sink, 1 << 30, &basis, old_data.size());
  sender.join();
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(sink.out, new_data);
}

TEST(RsyncCodecTest, DeltaIsMuchSmallerThanTheFile) {
  std::string old_data = RandomBytes(1 << 20, 3);
  std::string new_data = old_data;
  new_data[4000] ^= 1;  // an in-place rewrite, like a flag change in cyrus.index
  MemFile basis(old_data);
  auto sig = FileSignature(basis);
  ASSERT_TRUE(sig.ok());
  auto job = RsyncJob::Delta(*sig);
  ASSERT_TRUE(job.ok());
  auto delta = RunRsyncJob(**job, new_data);
  ASSERT_TRUE(delta.ok());
  EXPECT_LT(delta->size(), new_data.size() / 20);
  auto patch = RsyncJob::Patch(&basis, old_data.size());
  ASSERT_TRUE(patch.ok());
  auto out = RunRsyncJob(**patch, *delta);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, new_data);
}

TEST(RsyncCodecTest, HostileDeltaCopyingOutsideTheBasisIsCorruption) {
  std::string basis_data = RandomBytes(8192, 4);
  std::string big = RandomBytes(65536, 5);
  MemFile big_basis(big);
  auto sig = FileSignature(big_basis);
  ASSERT_TRUE(sig.ok());
  auto job = RsyncJob::Delta(*sig);
  auto delta = RunRsyncJob(**job, big);  // COPY commands reaching up to 64 KiB
  ASSERT_TRUE(delta.ok());
  MemFile small_basis(basis_data);  // ... applied to an 8 KiB basis
  auto patch = RsyncJob::Patch(&small_basis, basis_data.size());
  auto out = RunRsyncJob(**patch, *delta);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), Code::kCorruption);
  EXPECT_NE(out.error().message().find("outside the basis"), std::string::npos)
      << out.error().message();
}

TEST(RsyncCodecTest, GarbageDeltaAndSignatureAreRejected) {
  MemFile basis("abc");
  auto patch = RsyncJob::Patch(&basis, 3);
  EXPECT_FALSE(RunRsyncJob(**patch, "this is not a delta").ok());
  EXPECT_FALSE(RsyncJob::Delta("nor a signature").ok());
}

TEST(RsyncCodecTest, DeltaBodyWithoutBasisIsAProtocolError) {
  auto [a, b] = MakePipePair();
  ASSERT_TRUE(a->Send(kDeltaData, "rs\x02\x36").ok());
  StringSink sink;
  auto got = ReceiveBody(*b, sink, 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), Code::kCorruption);
}

}  // namespace
}  // namespace cyrsync::protocol
