// Running the `fedlora` binary from a test: shared by every test folder with CLI tests.
#ifndef FEDLORA_TESTS_TESTUTIL_CLI_RUNNER_H_
#define FEDLORA_TESTS_TESTUTIL_CLI_RUNNER_H_

#include <string>

namespace fedlora::testing {

// Result of running the `fedlora` binary.
struct CliResult {
  int exit_code = -1;  // -1 when it did not exit normally
  std::string out;
  std::string err;
};

// Single-quotes `s` for /bin/sh.
std::string ShellQuote(const std::string& s);

// Runs `FEDLORA_BINARY <args>` through /bin/sh, capturing stdout and stderr in files under
// `scratch_dir`.
CliResult RunFedlora(const std::string& args, const std::string& scratch_dir);

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_TESTUTIL_CLI_RUNNER_H_
