// `fedlora` on model directories that do not fit together: every command that loads one exits
// 1 with a single "fedlora: error:" line naming the field (never an abort, exit 134, with a
// libtorch backtrace). And what the CLI prints for an exception that escapes a command.
#include <torch/types.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <stdexcept>

#include "absl/strings/str_split.h"
#include "device_testutil.h"
#include "exception_line.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using fedlora::testing::CliResult;
using fedlora::testing::MakeLines;
using fedlora::testing::RunFedlora;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::ShellQuote;
using fedlora::testing::SmallConfig;
using fedlora::testing::WriteModelDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class CliLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() /
            ("fedlora_cli_load_" + std::to_string(::getpid()) + "_" + info->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream out(Path("text.txt"));
    for (const auto& l : MakeLines(1, 5, 4)) out << l << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  std::string Model() const { return ShellQuote(Path("model")); }

  CliResult Run(const std::string& args) const { return RunFedlora(args, dir_); }

  // Exit 1 and exactly one stderr line: "fedlora: error: ..." naming `field`, with a hint and
  // no backtrace.
  static void ExpectOneErrorLine(const CliResult& r, const std::string& field) {
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_NE(r.exit_code, 134) << "aborted: " << r.err;
    EXPECT_EQ(r.exit_code, 1) << r.err;
    std::vector<std::string> lines = absl::StrSplit(r.err, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_THAT(lines[0],
                AllOf(StartsWith("fedlora: error: "), HasSubstr(field), HasSubstr("hint:"),
                      Not(HasSubstr("Exception raised from")), Not(HasSubstr("frame #"))));
  }

  std::string dir_;
};

TEST_F(CliLoadTest, EvalRefusesBosTokenIdAtVocabSize) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.bos_token_id = c.vocab_size;  // an IndexError in the embedding before the check
  WriteModelDir(Path("model"), c);
  CliResult r = Run("eval --model " + Model() + " --data " + ShellQuote(Path("text.txt")));
  ExpectOneErrorLine(r, "bos_token_id");
  EXPECT_THAT(r.err, HasSubstr("config.json"));
}

TEST_F(CliLoadTest, SuggestRefusesTokenizerLargerThanVocabulary) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.vocab_size = SharedTokenizer().vocab_size() - 10;
  WriteModelDir(Path("model"), c);
  CliResult r = Run("suggest --model " + Model() + " --prefix 'hey maya want'");
  ExpectOneErrorLine(r, "vocab_size");
  EXPECT_THAT(r.err, HasSubstr("tokenizer.model"));
}

TEST_F(CliLoadTest, PerplexityRefusesFixtureTokenizerLargerThanVocabulary) {
  const std::string fixture =
      std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base/tokenizer.model";
  if (!fs::exists(fixture)) GTEST_SKIP() << "shared fixtures absent";
  WriteModelDir(Path("model"), SmallConfig(32, 1), fixture);
  CliResult r = Run("perplexity --model " + Model() + " " + ShellQuote(Path("text.txt")));
  ExpectOneErrorLine(r, "vocab_size");
}

TEST_F(CliLoadTest, EvalRefusesZeroMaxPositionEmbeddings) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.max_position_embeddings = 0;
  WriteModelDir(Path("model"), c);
  CliResult r = Run("eval --model " + Model() + " --data " + ShellQuote(Path("text.txt")));
  ExpectOneErrorLine(r, "max_position_embeddings");
}

TEST_F(CliLoadTest, GenerateRefusesNegativeEosTokenId) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.eos_token_id = -1;
  WriteModelDir(Path("model"), c);
  CliResult r = Run("generate --model " + Model() + " --prompt 'hey maya' -n 4");
  ExpectOneErrorLine(r, "eos_token_id");
}

// The line main() prints for anything thrown out of a command.
std::exception_ptr Capture(const std::function<void()>& f) {
  try {
    f();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

TEST(ExceptionLineTest, TorchErrorIsItsFirstLineWithoutBacktrace) {
  std::exception_ptr e = Capture([] {
    torch::zeros({3, 2}).index_select(0, torch::tensor({7}, torch::kInt64));
  });
  ASSERT_TRUE(e);
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& error) {
    // What the process printed before: the message plus a C++ backtrace.
    EXPECT_THAT(std::string(error.what()), HasSubstr("\n"));
  }
  const std::string line = cli::ExceptionLine(e);
  EXPECT_THAT(line, AllOf(StartsWith("fedlora: error: "), HasSubstr("index out of range"),
                          HasSubstr("(hint: "), Not(HasSubstr("Exception raised from")),
                          Not(HasSubstr("frame #"))));
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
}

TEST(ExceptionLineTest, OtherExceptionsAreOneLine) {
  EXPECT_EQ(cli::ExceptionMessage(Capture([] { throw std::runtime_error("first\nsecond"); })),
            "first");
  EXPECT_EQ(cli::ExceptionMessage(Capture([] { throw std::bad_alloc(); })), "std::bad_alloc");
  EXPECT_EQ(cli::ExceptionMessage(Capture([] { throw 42; })), "unknown exception");
  EXPECT_EQ(cli::ExceptionMessage(Capture([] { throw std::runtime_error(""); })), "unknown error");
}

}  // namespace
}  // namespace fedlora::device
