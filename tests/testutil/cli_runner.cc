#include "testutil/cli_runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "fedlora/common/file_util.h"

namespace fedlora::testing {

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliResult RunFedlora(const std::string& args, const std::string& scratch_dir) {
  static int counter = 0;
  const std::string n = std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const std::string out = (std::filesystem::path(scratch_dir) / ("out_" + n)).string(),
                    err = (std::filesystem::path(scratch_dir) / ("err_" + n)).string();
  std::string cmd =
      ShellQuote(FEDLORA_BINARY) + " " + args + " >" + ShellQuote(out) + " 2>" + ShellQuote(err);
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFileToString(out).value_or("");
  r.err = ReadFileToString(err).value_or("");
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

}  // namespace fedlora::testing
