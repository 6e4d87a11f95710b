#include "common/process.h"

#include <gtest/gtest.h>

#include "common/env.h"
#include "tests/testutil/temp_dir.h"

namespace cyrsync {
namespace {

TEST(ProcessTest, CapturesOutputAndExitCode) {
  auto r = RunProcess({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->output.find("out\n"), std::string::npos);
  EXPECT_NE(r->output.find("err\n"), std::string::npos);
  EXPECT_EQ(r->Describe(), "exit 3");
}

TEST(ProcessTest, FeedsStdinFromAFile) {
  testing::TempDir dir;
  const std::string in = JoinPath(dir.path(), "in");
  ASSERT_TRUE(AtomicWriteFile(Env::Default(), in, "hello stdin", {}).ok());
  auto r = RunProcess({"/bin/cat"}, in);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->output, "hello stdin");
}

TEST(ProcessTest, KeepsOnlyMaxOutputAndReportsSignals) {
  auto r = RunProcess({"/bin/sh", "-c", "head -c 100000 /dev/zero; kill -9 $$"}, "", 10);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output.size(), 10u);
  EXPECT_EQ(r->term_signal, 9);
  EXPECT_EQ(r->Describe(), "signal 9");
}

TEST(ProcessTest, MissingProgramIsAnError) {
  EXPECT_FALSE(RunProcess({"/nonexistent/tool"}).ok());
  EXPECT_EQ(RunProcess({}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace cyrsync
