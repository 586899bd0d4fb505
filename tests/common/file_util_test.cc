#include "fedlora/common/file_util.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora {
namespace {

TEST(FileUtilTest, WriteThenReadRoundTrips) {
  auto dir = std::filesystem::temp_directory_path() / "fedlora_file_util_test";
  ASSERT_TRUE(MakeDirs(dir.string()).ok());
  std::string path = (dir / "x.bin").string();
  std::string data("a\0b\xff", 4);
  ASSERT_TRUE(WriteFileAtomic(path, data).ok());
  auto back = ReadFileToString(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
}

TEST(FileUtilTest, MissingFileIsNotFoundAndNamesPath) {
  auto r = ReadFileToString("/nonexistent/fedlora/file.txt");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("/nonexistent/fedlora/file.txt"));
}

TEST(FileUtilTest, WriteIntoMissingDirectoryFailsWithoutLeavingFiles) {
  auto s = WriteFileAtomic("/nonexistent-dir-fedlora/x", "abc");
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace fedlora
