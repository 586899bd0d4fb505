// End-to-end runs of the real `fedlora` binary: pretrain a tiny model, score, generate,
// suggest, personalise with a LoRA adapter and evaluate it, plus the error paths.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "device_testutil.h"
#include "fedlora/common/file_util.h"
#include "gmock/gmock.h"
#include "fedlora/device/personal_keyboard.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using fedlora::testing::MakeLines;
using ::testing::HasSubstr;

using RunResult = fedlora::testing::CliResult;
using fedlora::testing::ShellQuote;

std::string Quote(const std::string& s) { return ShellQuote(s); }

void WriteLines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
}

// One temp dir and one pretrained model for the whole suite (pretraining is the slow part).
class CliTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        (fs::temp_directory_path() / ("fedlora_cli_test_" + std::to_string(::getpid()))).string());
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    std::vector<std::string> corpus;
    for (int u = 0; u < 6; ++u) {
      for (auto& l : MakeLines(u, 60, 1)) corpus.push_back(std::move(l));
    }
    WriteLines(Path("corpus.txt"), corpus);
    // The user's own text: train and held-out lines from different seeds.
    WriteLines(Path("user_train.txt"), MakeLines(2, 80, 5));
    WriteLines(Path("user_test.txt"), MakeLines(2, 20, 77));
    const std::string flags =
        " --vocab 300 --hidden 32 --layers 1 --heads 2 --batch 4 --context 32 --json";
    pretrain_ = new RunResult(Run("pretrain --corpus " + Quote(Path("corpus.txt")) + " --out " +
                                  Quote(ModelDir()) + " --steps 30" + flags));
    // A base that has learnt the template language, for personalisation: a 30-step base is
    // too weak for a q/v adapter to matter in 20 steps.
    trained_ = new RunResult(Run("pretrain --corpus " + Quote(Path("corpus.txt")) + " --out " +
                                 Quote(TrainedDir()) + " --steps 300" + flags));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete pretrain_;
    delete trained_;
  }
  void SetUp() override {
    ASSERT_EQ(pretrain_->exit_code, 0) << pretrain_->err;
    ASSERT_EQ(trained_->exit_code, 0) << trained_->err;
  }

  static std::string Path(const std::string& name) { return (fs::path(*dir_) / name).string(); }
  static std::string ModelDir() { return Path("model"); }
  static std::string TrainedDir() { return Path("model_300"); }

  // Runs `fedlora <args>` with stdout and stderr captured to files.
  static RunResult RunFedlora(const std::string& args) { return Run(args); }
  static RunResult Run(const std::string& args) {
    return fedlora::testing::RunFedlora(args, *dir_);
  }

  static nlohmann::json Json(const RunResult& r) {
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << "\nstderr: " << r.err;
    return j;
  }

  static std::string* dir_;
  static RunResult* pretrain_;
  static RunResult* trained_;
};

std::string* CliTest::dir_ = nullptr;
RunResult* CliTest::pretrain_ = nullptr;
RunResult* CliTest::trained_ = nullptr;

TEST_F(CliTest, PretrainWritesModelDirectoryAndLearns) {
  for (const char* f :
       {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(ModelDir()) / f)) << f;
  }
  EXPECT_FALSE(fs::exists(fs::path(ModelDir()) / "tokenizer.vocab"));
  // The keyboard's public lexicon ships with the base (device/personal_keyboard.h).
  auto tok = model::Tokenizer::Load((fs::path(ModelDir()) / "tokenizer.model").string(), 1, 2);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto kb = device::PersonalKeyboard::Load(ModelDir(), **tok);
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_TRUE(kb->has_value()) << "no public_ngram.txt beside the pretrained model";
  EXPECT_GT((*kb)->Strip().size(), 5u);
  nlohmann::json j = Json(*pretrain_);
  EXPECT_EQ(j["steps"], 30);
  EXPECT_LE(j["vocab"].get<int64_t>(), 300);
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
  EXPECT_LT(j["last_loss"].get<double>(), j["first_loss"].get<double>());
  auto cfg = nlohmann::json::parse(ReadFileToString(ModelDir() + "/config.json").value_or("{}"));
  EXPECT_EQ(cfg["hidden_size"], 32);
  EXPECT_EQ(cfg["num_hidden_layers"], 1);
  EXPECT_EQ(cfg["num_attention_heads"], 2);
  EXPECT_EQ(cfg["max_position_embeddings"], 32);
  EXPECT_EQ(cfg["vocab_size"], j["vocab"]);
  EXPECT_EQ(cfg["model_type"], "llama");
}

TEST_F(CliTest, VersionFlagAndSubcommandAgree) {
  RunResult flag = Run("--version");
  RunResult sub = Run("version");
  EXPECT_EQ(flag.exit_code, 0) << flag.err;
  EXPECT_EQ(sub.exit_code, 0) << sub.err;
  EXPECT_THAT(flag.out, ::testing::HasSubstr("fedlora 0."));
  EXPECT_EQ(flag.out, sub.out);
}

TEST_F(CliTest, MisspelledOptionAndSubcommandAreNamed) {
  RunResult opt = Run("suggest --model m --prefx hello");
  EXPECT_NE(opt.exit_code, 0);
  EXPECT_THAT(opt.err, ::testing::HasSubstr("unknown option --prefx for 'fedlora suggest'"));
  EXPECT_THAT(opt.err, ::testing::HasSubstr("did you mean --prefix?"));
  RunResult sub = Run("perplexty file.txt");
  EXPECT_NE(sub.exit_code, 0);
  EXPECT_THAT(sub.err, ::testing::HasSubstr("unknown argument perplexty"));
  EXPECT_THAT(sub.err, ::testing::HasSubstr("did you mean perplexity?"));
  RunResult nested = Run("coordinator stauts --state x");
  EXPECT_NE(nested.exit_code, 0);
  EXPECT_THAT(nested.err, ::testing::HasSubstr("did you mean status?"));
  // Nothing close: CLI11's own message, still an error.
  RunResult far = Run("suggest --model m --zzzzzzzz 1");
  EXPECT_NE(far.exit_code, 0);
  EXPECT_THAT(far.err, ::testing::Not(::testing::HasSubstr("did you mean")));
}

// The generated script completes subcommands and options in bash itself.
TEST_F(CliTest, BashCompletionCompletesSubcommandsAndOptions) {
  const std::string dir = ::testing::TempDir();
  RunResult r = Run("completion bash");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WriteFileAtomic(dir + "/fedlora.bash", r.out).ok());
  auto complete = [&](const std::string& line) {
    const std::string script =
        "source " + dir + "/fedlora.bash; COMP_WORDS=(" + line + "); "
        "COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _fedlora; echo \"${COMPREPLY[*]}\"";
    FILE* p = popen(("bash -c '" + script + "' 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
    pclose(p);
    return out;
  };
  EXPECT_THAT(complete("fedlora perp"), ::testing::HasSubstr("perplexity"));
  EXPECT_THAT(complete("fedlora coordinator st"), ::testing::HasSubstr("status"));
  EXPECT_THAT(complete("fedlora suggest --pre"), ::testing::HasSubstr("--prefix"));
  EXPECT_THAT(complete("fedlora coordinator init --ep"), ::testing::HasSubstr("--epsilon-budget"));
}

TEST_F(CliTest, PretrainWithTooSmallVocabNamesTheCharactersAndLeavesNoOut) {
  const std::string dir = ::testing::TempDir() + "/tiny_vocab";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string corpus;
  for (int i = 0; i < 40; ++i) {
    for (int c = 33; c < 127; ++c) corpus += static_cast<char>(c);
    corpus += "\n";
  }
  ASSERT_TRUE(WriteFileAtomic(dir + "/corpus.txt", corpus).ok());
  RunResult r = Run("pretrain --corpus " + dir + "/corpus.txt --out " + dir + "/model --vocab 40 --steps 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("vocabulary size 40 is too small"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("one per distinct character"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("--vocab"));
  EXPECT_FALSE(fs::exists(dir + "/model"));
}

// Every leaf command's --help carries examples; accounting and bench flags show defaults.
TEST_F(CliTest, EveryCommandHelpHasExamples) {
  for (const char* cmd :
       {"perplexity", "generate", "suggest", "train", "eval", "pretrain", "sim", "privacy epsilon",
        "privacy noise", "privacy ddg", "data stats", "data personas", "bench secagg", "version",
        "coordinator init", "coordinator run", "coordinator status", "coordinator tokens",
        "coordinator revoke", "cluster up", "cluster down", "device enroll", "device run",
        "device status",
        "device install-release",
        "completion", "distill", "keys new", "release create", "release sign", "release verify",
        "release inspect", "release export", "release rollback", "release publish",
        "release promote", "release halt", "device update", "compress", "export", "logprobs"}) {
    RunResult r = Run(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
    EXPECT_THAT(r.out, ::testing::HasSubstr("Example")) << cmd;
  }
  EXPECT_THAT(Run("bench secagg --help").out, ::testing::HasSubstr("100000]=100"));
  EXPECT_THAT(Run("sim --help").out, ::testing::HasSubstr("--devices INT=200"));
  const std::string ddg = Run("privacy ddg --help").out;
  EXPECT_THAT(ddg, ::testing::HasSubstr("--bits INT=20"));
  EXPECT_THAT(ddg, ::testing::Not(::testing::HasSubstr("--dim UINT=0")));  // required: no default
}

TEST_F(CliTest, InspectShowsModelAdapterAndBlob) {
  const std::string fx = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama";
  if (!fs::exists(fx)) GTEST_SKIP() << "no ../shared fixtures";
  RunResult m = Run("inspect --json " + Quote(fx + "/base"));
  ASSERT_EQ(m.exit_code, 0) << m.err;
  nlohmann::json mj = Json(m);
  EXPECT_EQ(mj["kind"], "model");
  EXPECT_EQ(mj["config"]["hidden_size"], 64);
  EXPECT_EQ(mj["config"]["vocab_size"], 512);
  EXPECT_EQ(mj["parameters"], mj["config_parameters"]);
  EXPECT_EQ(mj["sha256"].get<std::string>().size(), 64u);
  EXPECT_DOUBLE_EQ(mj["bits_per_weight"].get<double>(), 32.0);
  EXPECT_GT(mj["tokenizer_pieces"].get<int64_t>(), 0);
  EXPECT_LE(mj["tokenizer_pieces"].get<int64_t>(), 512);
  RunResult a = Run("inspect --json " + Quote(fx + "/adapter"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  nlohmann::json aj = Json(a);
  EXPECT_EQ(aj["kind"], "peft adapter");
  EXPECT_TRUE(aj.contains("r"));
  EXPECT_GT(aj["parameters"].get<int64_t>(), 0);
  RunResult missing = Run("inspect /nonexistent/path");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, ::testing::HasSubstr("no such file"));
}

// `export --format gguf` writes a whole-model GGUF that `inspect` reads (llama.cpp checks its
// numbers in tests/gguf); `logprobs` gives normalised, sorted distributions from BOS on.
TEST_F(CliTest, ExportGgufInspectAndLogprobs) {
  const std::string out = Path("model.q8_0.gguf");
  RunResult e = Run("export --model " + Quote(ModelDir()) + " --format gguf --type q8_0 --out " +
                    Quote(out) + " --json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(Json(e)["bytes"].get<int64_t>(), static_cast<int64_t>(fs::file_size(out)));
  RunResult i = Run("inspect --json " + Quote(out));
  ASSERT_EQ(i.exit_code, 0) << i.err;
  nlohmann::json ij = Json(i);
  EXPECT_EQ(ij["kind"], "gguf model");
  EXPECT_EQ(ij["metadata"]["general.architecture"], "\"llama\"");
  EXPECT_EQ(ij["metadata"]["general.file_type"], "7");
  EXPECT_EQ(ij["metadata"]["llama.embedding_length"], "32");
  EXPECT_EQ(ij["metadata"]["tokenizer.ggml.model"], "\"llama\"");
  EXPECT_GT(ij["ggml_types"]["Q8_0"].get<int64_t>(), 0);
  EXPECT_GT(ij["ggml_types"]["F32"].get<int64_t>(), 0);  // norms
  RunResult bad = Run("export --model " + Quote(ModelDir()) + " --type q4_0 --out x.gguf");
  EXPECT_NE(bad.exit_code, 0);

  RunResult all = Run("logprobs --model " + Quote(ModelDir()) + " --top 0 --json \"the cat\"");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  nlohmann::json p = Json(all)["prompts"][0];
  EXPECT_EQ(p["ids"][0], 1);  // BOS
  ASSERT_EQ(p["top"].size(), p["ids"].size());
  for (const auto& pos : p["top"]) {
    double mass = 0, prev = 0;
    for (size_t k = 0; k < pos.size(); ++k) {
      const double lp = pos[k][1].get<double>();
      if (k > 0) {
        EXPECT_LE(lp, prev);
      }
      prev = lp;
      mass += std::exp(lp);
    }
    EXPECT_NEAR(mass, 1.0, 1e-6);
  }
  RunResult three = Run("logprobs --model " + Quote(ModelDir()) + " --top 3 --json \"the cat\"");
  ASSERT_EQ(three.exit_code, 0) << three.err;
  nlohmann::json t = Json(three)["prompts"][0]["top"];
  EXPECT_EQ(t[1].size(), 3u);
  EXPECT_EQ(t[1][2][0], p["top"][1][2][0]);
}

TEST_F(CliTest, PerplexityIsFinite) {
  RunResult r = Run("perplexity --model " + Quote(ModelDir()) + " " + Quote(Path("user_test.txt")) +
                    " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = Json(r);
  const double ppl = j["perplexity"].get<double>();
  EXPECT_TRUE(std::isfinite(ppl));
  EXPECT_GT(ppl, 1.0);
  // Trained for 30 steps it must beat a uniform guess over the vocabulary.
  auto cfg = nlohmann::json::parse(ReadFileToString(ModelDir() + "/config.json").value_or("{}"));
  EXPECT_LT(ppl, cfg["vocab_size"].get<double>());
  EXPECT_GT(j["tokens"].get<int64_t>(), 100);
}

// Inputs that used to print "perplexity 1.0000" with exit 0, or were scored as text.
TEST_F(CliTest, PerplexityRefusesEmptyDirectoryBinaryAndWindowOne) {
  {
    std::ofstream(Path("empty.txt")) << "";
    std::ofstream bin(Path("binary.bin"), std::ios::binary);
    const char bytes[] = {'h', 'i', ' ', '\xff', '\xfe', '\x00', 'x'};
    bin.write(bytes, sizeof(bytes));
  }
  struct Case {
    std::string args, expect;
  };
  const Case cases[] = {
      {Quote(Path("empty.txt")), "no tokens were scored"},
      {Quote(*dir_), "is a directory"},
      {Quote(Path("binary.bin")), "not UTF-8 text: invalid byte 0xFF at byte offset 3"},
      {Quote(Path("user_test.txt")) + " --window 1", "--window must be >= 2"},
  };
  for (const Case& c : cases) {
    RunResult r = Run("perplexity --model " + Quote(ModelDir()) + " " + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out;
    EXPECT_THAT(r.err, HasSubstr(c.expect)) << c.args;
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("perplexity")));
  }
  // train and eval refuse the binary file too (train saves nothing).
  RunResult t = Run("train --model " + Quote(ModelDir()) + " --data " + Quote(Path("binary.bin")) +
                    " --out " + Quote(Path("binary_adapter")));
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_THAT(t.err, HasSubstr("not UTF-8 text"));
  EXPECT_FALSE(fs::exists(Path("binary_adapter")));
  RunResult e = Run("eval --model " + Quote(ModelDir()) + " --data " + Quote(Path("binary.bin")));
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_THAT(e.err, HasSubstr("not UTF-8 text"));
}

// -n beyond the context stops at the context, and says so (it used to stop silently).
TEST_F(CliTest, GenerateWarnsWhenTheContextEndsIt) {
  RunResult r =
      Run("generate --model " + Quote(ModelDir()) + " --prompt hey -n 100 --ignore-eos --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = Json(r);
  EXPECT_EQ(j["stopped_early"], "context");
  EXPECT_LT(j["new_tokens"].get<int>(), 100);
  EXPECT_THAT(r.err, HasSubstr("warning: stopped after"));
  EXPECT_THAT(r.err, HasSubstr("context is 32 tokens"));
  RunResult short_run = Run("generate --model " + Quote(ModelDir()) + " --prompt hey -n 3");
  ASSERT_EQ(short_run.exit_code, 0);
  EXPECT_THAT(short_run.err, ::testing::Not(HasSubstr("warning")));
}

TEST_F(CliTest, GenerateIsRepeatableForASeedAndGreedyWithTopK1) {
  const std::string base = "generate --model " + Quote(ModelDir()) + " --prompt hey -n 5";
  RunResult a = Run(base + " --seed 1");
  RunResult b = Run(base + " --seed 1");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_THAT(a.out, ::testing::StartsWith("hey"));
  // top-k 1 is greedy: the seed no longer matters.
  RunResult g1 = Run(base + " --top-k 1 --seed 1 --json");
  RunResult g2 = Run(base + " --top-k 1 --seed 2 --json");
  ASSERT_EQ(g1.exit_code, 0) << g1.err;
  ASSERT_EQ(g2.exit_code, 0) << g2.err;
  EXPECT_EQ(Json(g1)["completion"], Json(g2)["completion"]);
  EXPECT_LE(Json(g1)["new_tokens"].get<int>(), 5);
  // ... and equal to temperature 0.
  RunResult t0 = Run(base + " --temperature 0 --seed 3 --json");
  ASSERT_EQ(t0.exit_code, 0) << t0.err;
  EXPECT_EQ(Json(g1)["completion"], Json(t0)["completion"]);
}

// Checks `fedlora suggest -k 3 --json` on `model_dir`: three distinct, non-empty words.
void ExpectThreeSuggestions(const RunResult& r) {
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_TRUE(j["suggestions"].is_array());
  ASSERT_EQ(j["suggestions"].size(), 3u);
  std::set<std::string> words;
  for (const auto& s : j["suggestions"]) {
    const std::string w = s["word"].get<std::string>();
    EXPECT_FALSE(w.empty()) << r.out;
    words.insert(w);
    EXPECT_LT(s["log_prob"].get<double>(), 0.0);
  }
  EXPECT_EQ(words.size(), 3u) << "duplicate suggestions: " << r.out;
  EXPECT_GT(j["latency_ms"].get<double>(), 0.0);
}

TEST_F(CliTest, SuggestReturnsKWordsAndLatency) {
  ExpectThreeSuggestions(
      Run("suggest --model " + Quote(TrainedDir()) + " --prefix hey -k 3 --json"));
}

// Known bug (see report): on a weak model the bare word-start piece "\u2581" can be the most
// likely first token and its greedy completion stops at once, so the strip shows "".
TEST_F(CliTest, SuggestOnWeakModelHasNoEmptyWords) {
  ExpectThreeSuggestions(Run("suggest --model " + Quote(ModelDir()) + " --prefix hey -k 3 --json"));
}

// Trains an adapter with `extra` flags and returns {base, tuned} held-out perplexity.
std::pair<double, double> TrainAndEval(const std::string& model, const std::string& adapter,
                                       const std::string& extra) {
  RunResult t = CliTest::RunFedlora("train --model " + Quote(model) + " --data " +
                                    Quote(CliTest::Path("user_train.txt")) + " --out " +
                                    Quote(adapter) + " --steps 20 --lr 0.01 --json" + extra);
  EXPECT_EQ(t.exit_code, 0) << t.err;
  nlohmann::json tj = nlohmann::json::parse(t.out, nullptr, false);
  EXPECT_FALSE(tj.is_discarded()) << t.out;
  if (tj.is_discarded()) return {0, 0};
  EXPECT_EQ(tj["steps"], 20);
  EXPECT_LT(tj["last_loss"].get<double>(), tj["first_loss"].get<double>());
  EXPECT_TRUE(fs::exists(fs::path(adapter) / "adapter_config.json"));
  EXPECT_TRUE(fs::exists(fs::path(adapter) / "adapter_model.safetensors"));
  const std::string eval = "eval --model " + Quote(model) + " --data " +
                           Quote(CliTest::Path("user_test.txt")) + " --json";
  RunResult base = CliTest::RunFedlora(eval);
  RunResult tuned = CliTest::RunFedlora(eval + " --adapter " + Quote(adapter));
  EXPECT_EQ(base.exit_code, 0) << base.err;
  EXPECT_EQ(tuned.exit_code, 0) << tuned.err;
  auto bj = nlohmann::json::parse(base.out, nullptr, false);
  auto aj = nlohmann::json::parse(tuned.out, nullptr, false);
  if (bj.is_discarded() || aj.is_discarded()) {
    ADD_FAILURE() << "eval output is not JSON";
    return {0, 0};
  }
  EXPECT_EQ(bj["tokens"], aj["tokens"]);
  // The base model on disk is untouched by training.
  auto again = nlohmann::json::parse(CliTest::RunFedlora(eval).out, nullptr, false);
  EXPECT_EQ(again["perplexity"], bj["perplexity"]);
  return {bj["perplexity"].get<double>(), aj["perplexity"].get<double>()};
}

TEST_F(CliTest, TrainWarnsWhenTheRunIsTooShortToMatter) {
  WriteLines(Path("tiny.txt"), MakeLines(2, 12, 9));
  RunResult t = Run("train --model " + Quote(TrainedDir()) + " --data " + Quote(Path("tiny.txt")) +
                    " --out " + Quote(Path("tiny_adapter")) + " --json");
  EXPECT_EQ(t.exit_code, 0) << t.err;
  EXPECT_THAT(t.err, ::testing::HasSubstr("warning: only"));
  EXPECT_THAT(t.err, ::testing::HasSubstr("--steps"));
  // A real run says nothing of the kind.
  RunResult ok = Run("train --model " + Quote(TrainedDir()) + " --data " +
                     Quote(Path("user_train.txt")) + " --out " + Quote(Path("ok_adapter")) +
                     " --steps 20 --seq 32 --json");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.err, ::testing::Not(::testing::HasSubstr("warning: only")));
}

// An adapter records its base; another base with the same shapes is refused at load.
TEST_F(CliTest, AdapterForAnotherBaseWithEqualShapesIsRefused) {
  RunResult t = Run("train --model " + Quote(TrainedDir()) + " --data " +
                    Quote(Path("user_train.txt")) + " --out " + Quote(Path("based_adapter")) +
                    " --steps 10 --seq 32 --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  auto cfg = nlohmann::json::parse(
      ReadFileToString(Path("based_adapter") + "/adapter_config.json").value_or("{}"));
  ASSERT_TRUE(cfg["base_model_name_or_path"].is_string());
  EXPECT_THAT(cfg["base_model_name_or_path"].get<std::string>(), ::testing::HasSubstr("model_300"));
  const std::string eval = " --data " + Quote(Path("user_test.txt")) + " --adapter " +
                           Quote(Path("based_adapter")) + " --json";
  RunResult same = Run("eval --model " + Quote(TrainedDir()) + eval);
  EXPECT_EQ(same.exit_code, 0) << same.err;
  RunResult other = Run("eval --model " + Quote(ModelDir()) + eval);
  EXPECT_NE(other.exit_code, 0);
  EXPECT_THAT(other.err, ::testing::HasSubstr("was trained for base model"));
  EXPECT_THAT(other.err, ::testing::HasSubstr("model_300"));
}

TEST_F(CliTest, TrainedAdapterLowersHeldOutPerplexity) {
  // Windows as long as the model's context (32).
  auto [p0, p1] = TrainAndEval(TrainedDir(), Path("adapter"), " --seq 32");
  RecordProperty("base_perplexity", std::to_string(p0));
  RecordProperty("adapter_perplexity", std::to_string(p1));
  EXPECT_GT(p0, 1.0);
  EXPECT_LT(p1, 0.95 * p0) << "base " << p0 << ", with adapter " << p1;
}

// Known bug (see report): `train` defaults to --seq 128 whatever the model's
// max_position_embeddings (32 here), so the adapter learns positions the base never saw and
// held-out perplexity at the model's context gets worse.
TEST_F(CliTest, TrainedAdapterWithDefaultSeqLowersHeldOutPerplexity) {
  auto [p0, p1] = TrainAndEval(TrainedDir(), Path("adapter_default_seq"), "");
  EXPECT_LT(p1, 0.95 * p0) << "base " << p0 << ", with adapter " << p1;
}

TEST_F(CliTest, MissingModelDirectoryNamedInError) {
  RunResult r =
      Run("perplexity --model /nonexistent/fedlora_model " + Quote(Path("user_test.txt")));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err + r.out, HasSubstr("/nonexistent/fedlora_model"));
}

TEST_F(CliTest, UnknownTargetNamedInError) {
  RunResult r =
      Run("train --model " + Quote(ModelDir()) + " --data " + Quote(Path("user_train.txt")) +
          " --out " + Quote(Path("bad_adapter")) + " --targets bogus_proj --steps 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err + r.out, HasSubstr("bogus_proj"));
  EXPECT_FALSE(fs::exists(Path("bad_adapter")));
}

TEST_F(CliTest, MissingDataFileNamedInError) {
  RunResult r = Run("eval --model " + Quote(ModelDir()) + " --data " + Quote(Path("no_such.txt")));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err + r.out, HasSubstr("no_such.txt"));
}

}  // namespace
}  // namespace fedlora::device
