// Store::EnsureDir: directories are made for the Cyrus user, and one left owned by someone else
// (a daemon killed between a mkdir and its chown) is given back, but never a root or above.
#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>

#include "replica/session_test_util.h"

namespace cyrsync::replica {
namespace {

using namespace ::cyrsync::replica::test;  // NOLINT(google-build-using-namespace)

// Records chowns instead of doing them (the test need not run as root).
class ChownRecordingEnv final : public EnvWrapper {
 public:
  ChownRecordingEnv() : EnvWrapper(Env::Default()) {}
  Status Chown(const std::string& p, uint32_t uid, uint32_t gid) override {
    std::lock_guard g(mu_);
    chowned_.push_back(p);
    return Status::Ok();
  }
  std::vector<std::string> Take() {
    std::lock_guard g(mu_);
    return std::exchange(chowned_, {});
  }

 private:
  std::mutex mu_;
  std::vector<std::string> chowned_;
};

class StoreDirsTest : public ReplicaFixture {
 protected:
  void SetUp() override {
    env_ = &env;  // members outlive TearDown's store_.reset()
    ReplicaFixture::SetUp();
    opts_.owner = Owner{true, static_cast<uint32_t>(::getuid()) + 4242, ::getgid()};
    ASSERT_NO_FATAL_FAILURE(OpenStore());
    (void)env.Take();
  }
  ChownRecordingEnv env;
};

TEST_F(StoreDirsTest, NewDirectoriesAreMadeForTheCyrusUser) {
  ASSERT_TRUE(store_->EnsureDir(Spool("uuid/a/b")).ok());
  EXPECT_TRUE(fs::is_directory(Spool("uuid/a/b")));
  // The root existed (owned by someone else, as every directory here is): left alone.
  EXPECT_EQ(env.Take(), (std::vector<std::string>{Spool("uuid"), Spool("uuid/a"),
                                                  Spool("uuid/a/b")}));
}

TEST_F(StoreDirsTest, ADirectoryLeftOwnedBySomeoneElseIsGivenBack) {
  fs::create_directories(Spool("uuid/a"));  // as if the chown after its mkdir never ran
  ASSERT_TRUE(store_->EnsureDir(Spool("uuid/a/b")).ok());
  EXPECT_EQ(env.Take(), (std::vector<std::string>{Spool("uuid/a"), Spool("uuid/a/b")}));
  // An existing directory itself, too.
  ASSERT_TRUE(store_->EnsureDir(Spool("uuid/a/b")).ok());
  EXPECT_EQ(env.Take(), (std::vector<std::string>{Spool("uuid/a/b")}));
}

TEST_F(StoreDirsTest, ARootIsNeverChowned) {
  ASSERT_TRUE(store_->EnsureDir(spool_).ok());
  ASSERT_TRUE(store_->EnsureDir(conf_dir_).ok());
  EXPECT_TRUE(env.Take().empty());
}

}  // namespace
}  // namespace cyrsync::replica
