// ReadBoundedRegularFile (common/bounded_file.h): the one reader of
// certificates, keys and token files, on real files, FIFOs and directories.
#include "common/bounded_file.h"

#include <sys/stat.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_env.h"

namespace sluice {
namespace {

using ::sluice::testing::ScratchDir;
using ::sluice::testing::StatusIs;
using ::sluice::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ReadBoundedRegularFileTest, ReadsAFileUpToTheBoundAndGivesItsMode) {
  ScratchDir dir;
  const std::string path = dir.File("ca.pem");
  WriteFile(path, "12345");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  mode_t mode = 0;
  const absl::StatusOr<std::string> read = ReadBoundedRegularFile("--tls-ca", path, 5, &mode);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "12345");
  EXPECT_EQ(mode & 0777, 0640u);
}

TEST(ReadBoundedRegularFileTest, ErrorsNameTheFlagAndThePath) {
  ScratchDir dir;
  const std::string big = dir.File("big.pem");
  WriteFile(big, std::string(6, 'x'));
  EXPECT_THAT(ReadBoundedRegularFile("--tls-cert", big, 5),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--tls-cert"), HasSubstr(big), HasSubstr("larger than 5"))));
  const std::string missing = dir.File("missing.pem");
  EXPECT_THAT(ReadBoundedRegularFile("--tls-key", missing, 5),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--tls-key"), HasSubstr(missing))));
  EXPECT_THAT(ReadBoundedRegularFile("token file", dir.path().string(), 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

// A FIFO put in a certificate's or token file's place must not hang the
// reader (opened O_NONBLOCK, refused after fstat on the open descriptor).
TEST(ReadBoundedRegularFileTest, AFifoIsRefusedWithoutBlocking) {
  ScratchDir dir;
  const std::string fifo = dir.File("token");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(ReadBoundedRegularFile("--token-file", fifo, 1024),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

}  // namespace
}  // namespace sluice
