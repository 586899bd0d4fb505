// Crash safety of renames (common/file_util.h): after a file is moved into place, its
// directory is fsynced, or a power loss can undo the rename although the data was synced.
// Checked on the system calls of real writes: `fedlora keys new` (WriteFileWithMode, the
// private key) under strace, and WriteFileAtomic / SyncDir in this process.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "fedlora/common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora {
namespace {

namespace fs = std::filesystem;

// True when `log` (strace -f output) shows, after the last rename/link into `dir`, an fsync of
// a descriptor opened on `dir` itself.
bool DirSyncedAfterLastRename(const std::string& log, const std::string& dir) {
  std::istringstream in(log);
  std::string line;
  std::map<std::string, bool> dir_fds;  // fd -> opened on dir
  bool renamed = false, synced_after = false;
  const std::regex open_re(R"re(openat\(AT_FDCWD, "([^"]*)", ([^)]*)\) = (\d+))re");
  const std::regex fsync_re(R"re(fsync\((\d+)\)\s+= 0)re");
  std::smatch m;
  while (std::getline(in, line)) {
    if ((line.find("rename") != std::string::npos || line.find("link") != std::string::npos) &&
        line.find("\"" + dir + "/") != std::string::npos && line.find("= 0") != std::string::npos &&
        line.find("unlink") == std::string::npos) {
      renamed = true;
      synced_after = false;
    } else if (std::regex_search(line, m, open_re)) {
      dir_fds[m[3]] = m[1] == dir && m[2].str().find("O_DIRECTORY") != std::string::npos;
    } else if (std::regex_search(line, m, fsync_re) && renamed && dir_fds[m[1]]) {
      synced_after = true;
    }
  }
  return renamed && synced_after;
}

TEST(FileSyncTest, AKeyFileRenamedIntoPlaceHasItsDirectorySynced) {
  const fs::path dir = fs::temp_directory_path() / "fedlora_file_sync_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (std::system("strace -V > /dev/null 2>&1") != 0) GTEST_SKIP() << "strace is not installed";
  const std::string log = (dir / "strace.log").string();
  const std::string cmd =
      "strace -f -qq -e trace=openat,rename,renameat,renameat2,link,linkat,fsync -o '" + log +
      "' '" + FEDLORA_BINARY + "' keys new --out '" + (dir / "keys/op.key").string() +
      "' > /dev/null 2>&1";
  fs::create_directories(dir / "keys");
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream l(log);
    if (!l) GTEST_SKIP() << "strace cannot trace here (ptrace refused)";
    FAIL() << "fedlora keys new failed under strace";
  }
  std::ifstream l(log);
  std::stringstream text;
  text << l.rdbuf();
  ASSERT_TRUE(fs::exists(dir / "keys/op.key"));
  EXPECT_TRUE(DirSyncedAfterLastRename(text.str(), (dir / "keys").string()))
      << "no fsync of " << (dir / "keys") << " after the key file was moved into place:\n"
      << text.str().substr(0, 4000);
  fs::remove_all(dir);
}

TEST(FileSyncTest, SyncDirFlushesADirectoryAndNamesAMissingOne) {
  const fs::path dir = fs::temp_directory_path() / "fedlora_file_sync_dir";
  fs::create_directories(dir);
  EXPECT_TRUE(SyncDir(dir.string()).ok());
  EXPECT_TRUE(WriteFileAtomic((dir / "a.txt").string(), "x").ok());
  EXPECT_TRUE(SyncParentDir("relative-name").ok()) << "a bare name syncs the current directory";
  const absl::Status missing = SyncDir((dir / "missing").string());
  EXPECT_EQ(missing.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(missing.message()), ::testing::HasSubstr("missing"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedlora
