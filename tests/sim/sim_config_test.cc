#include "fedlora/sim/sim_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::sim {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Every section with a non-default value, comments in all styles, quoting and blank lines.
constexpr char kFullConfig[] = R"ini(
# a comment
; another comment
[run]
seed = 42
out = /tmp/x-out   # inline comment
threads = 3

[model]
model = "/models/tiny"

[pretrain]
vocab = 512
hidden = 64
layers = 3
heads = 2
steps = 10
batch = 8
lr = 0.01
public_lines = 100

[data]
data = personas:users=30,seed=2
format = personas
min_lines = 5
test_fraction = 0.25
heldout_fraction = 0.2
devices = 30

[rounds]
rounds = 7
sampling = fixed
cohort = 6
poisson_rate = 0.3
eval_every = 2
eval_users = 4
personalize_steps = 3

[local]
mode = sequential
steps = 0
epochs = 2
batch = 2
seq_len = 32
optimizer = sgd
lr = 0.1
clip = 0
max_group = 8

[lora]
rank = 4
alpha = 8
targets = q_proj, k_proj ,down_proj

[server]
optimizer = fedyogi
lr = 0.5
beta1 = 0.8
beta2 = 0.95
eps = 0.01

[privacy]
dp = central
noise_multiplier = 1.5
clip_mode = adaptive
clip = 0.25
target_quantile = 0.6
clip_lr = 0.1
delta = 1e-6
epsilon_budget = 8
bits = 16
min_survivors = 0.9
modclip_prob = 1e-5

[secagg]
graph = complete
dropout_advertise = 0.01
dropout_share = 0.02
dropout_masked = 0.03
dropout_unmask = 0.04
speed_sigma = 0.1
deadline = 30

[output]
json = yes
progress = 0
plots = false
)ini";

TEST(SimConfigTest, ParsesEverySection) {
  SimConfig c;
  ASSERT_TRUE(ApplyConfigText(kFullConfig, "full.ini", &c).ok());
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.out, "/tmp/x-out");
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.model, "/models/tiny");
  EXPECT_EQ(c.pretrain_vocab, 512);
  EXPECT_EQ(c.pretrain_hidden, 64);
  EXPECT_EQ(c.pretrain_layers, 3);
  EXPECT_EQ(c.pretrain_heads, 2);
  EXPECT_EQ(c.pretrain_steps, 10);
  EXPECT_EQ(c.pretrain_batch, 8);
  EXPECT_DOUBLE_EQ(c.pretrain_lr, 0.01);
  EXPECT_EQ(c.pretrain_public_lines, 100);
  EXPECT_EQ(c.data, "personas:users=30,seed=2");
  EXPECT_EQ(c.data_format, "personas");
  EXPECT_EQ(c.min_lines, 5);
  EXPECT_DOUBLE_EQ(c.test_fraction, 0.25);
  EXPECT_DOUBLE_EQ(c.heldout_fraction, 0.2);
  EXPECT_EQ(c.devices, 30);
  EXPECT_EQ(c.rounds, 7);
  EXPECT_EQ(c.sampling, SamplingMode::kFixed);
  EXPECT_EQ(c.cohort, 6);
  EXPECT_DOUBLE_EQ(c.poisson_rate, 0.3);
  EXPECT_EQ(c.eval_every, 2);
  EXPECT_EQ(c.eval_users, 4);
  EXPECT_EQ(c.personalize_steps, 3);
  EXPECT_EQ(c.train_mode, TrainMode::kSequential);
  EXPECT_EQ(c.local_steps, 0);
  EXPECT_EQ(c.local_epochs, 2);
  EXPECT_EQ(c.local_batch, 2);
  EXPECT_EQ(c.seq_len, 32);
  EXPECT_EQ(c.local_optimizer, "sgd");
  EXPECT_DOUBLE_EQ(c.local_lr, 0.1);
  EXPECT_DOUBLE_EQ(c.local_clip, 0);
  EXPECT_EQ(c.max_group, 8);
  EXPECT_EQ(c.rank, 4);
  EXPECT_DOUBLE_EQ(c.alpha, 8);
  EXPECT_EQ(c.targets, (std::vector<std::string>{"q_proj", "k_proj", "down_proj"}));
  EXPECT_EQ(c.server_optimizer, ServerOptimizerKind::kFedYogi);
  EXPECT_DOUBLE_EQ(c.server_lr, 0.5);
  EXPECT_DOUBLE_EQ(c.server_beta1, 0.8);
  EXPECT_DOUBLE_EQ(c.server_beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.server_eps, 0.01);
  EXPECT_EQ(c.dp, DpMode::kCentral);
  EXPECT_DOUBLE_EQ(c.noise_multiplier, 1.5);
  EXPECT_EQ(c.clip_mode, ClipMode::kAdaptive);
  EXPECT_DOUBLE_EQ(c.clip, 0.25);
  EXPECT_DOUBLE_EQ(c.target_quantile, 0.6);
  EXPECT_DOUBLE_EQ(c.clip_lr, 0.1);
  EXPECT_DOUBLE_EQ(c.delta, 1e-6);
  EXPECT_DOUBLE_EQ(c.epsilon_budget, 8);
  EXPECT_EQ(c.bits, 16);
  EXPECT_DOUBLE_EQ(c.min_survivors, 0.9);
  EXPECT_DOUBLE_EQ(c.modclip_prob, 1e-5);
  EXPECT_EQ(c.graph, GraphMode::kComplete);
  EXPECT_DOUBLE_EQ(c.dropout_advertise, 0.01);
  EXPECT_DOUBLE_EQ(c.dropout_share, 0.02);
  EXPECT_DOUBLE_EQ(c.dropout_masked, 0.03);
  EXPECT_DOUBLE_EQ(c.dropout_unmask, 0.04);
  EXPECT_DOUBLE_EQ(c.speed_sigma, 0.1);
  EXPECT_DOUBLE_EQ(c.deadline, 30);
  EXPECT_TRUE(c.json);
  EXPECT_FALSE(c.progress);
  EXPECT_FALSE(c.plots);
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

TEST(SimConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateConfig(SimConfig{}).ok()); }

TEST(SimConfigTest, EmptyTextAndCommentsOnlyChangeNothing) {
  SimConfig c;
  ASSERT_TRUE(ApplyConfigText("\n  # only\n;comments\n\r\n", "x.ini", &c).ok());
  EXPECT_EQ(ConfigToJson(c), ConfigToJson(SimConfig{}));
}

TEST(SimConfigTest, FullKeysOutsideSectionsAndCrlf) {
  SimConfig c;
  ASSERT_TRUE(ApplyConfigText("rounds.cohort = 9\r\n[local]\r\nlr=0.25\r\n", "x.ini", &c).ok());
  EXPECT_EQ(c.cohort, 9);
  EXPECT_DOUBLE_EQ(c.local_lr, 0.25);
}

TEST(SimConfigTest, OverridesWinOverFile) {
  SimConfig c;
  ASSERT_TRUE(ApplyConfigText("[rounds]\ncohort = 10\nrounds = 3\n", "x.ini", &c).ok());
  ASSERT_TRUE(ApplyOverride("rounds.cohort", "20", &c).ok());
  ASSERT_TRUE(ApplyOverride("privacy.dp", "none", &c).ok());
  ASSERT_TRUE(ApplyOverride("lora.targets", "o_proj", &c).ok());
  EXPECT_EQ(c.cohort, 20);
  EXPECT_EQ(c.rounds, 3);
  EXPECT_EQ(c.dp, DpMode::kNone);
  EXPECT_EQ(c.targets, std::vector<std::string>{"o_proj"});
}

TEST(SimConfigTest, BooleanSpellings) {
  SimConfig c;
  for (const char* t : {"true", "1", "yes", "TRUE"}) {
    c.json = false;
    ASSERT_TRUE(ApplyOverride("output.json", t, &c).ok()) << t;
    EXPECT_TRUE(c.json) << t;
  }
  for (const char* f : {"false", "0", "no"}) {
    c.json = true;
    ASSERT_TRUE(ApplyOverride("output.json", f, &c).ok()) << f;
    EXPECT_FALSE(c.json) << f;
  }
  absl::Status s = ApplyOverride("output.json", "maybe", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("output.json"), HasSubstr("'maybe'")));
}

TEST(SimConfigTest, UnknownKeySuggestsClosestWithLine) {
  SimConfig c;
  absl::Status s = ApplyConfigText("[run]\nseed = 1\n\n[local]\ncohort = 10\n", "cfg.ini", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("cfg.ini:5"), HasSubstr("local.cohort"),
                                 HasSubstr("did you mean rounds.cohort?")));
  s = ApplyConfigText("[rounds]\ncohrot = 10\n", "cfg.ini", &c);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("cfg.ini:2"), HasSubstr("rounds.cohort?")));
  s = ApplyConfigText("[rounds]\nzzzzzzzzzzzz = 1\n", "cfg.ini", &c);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("rounds.zzzzzzzzzzzz"), Not(HasSubstr("did you mean"))));
}

TEST(SimConfigTest, UnknownSectionNamesLine) {
  SimConfig c;
  absl::Status s = ApplyConfigText("\n[rund]\nseed = 1\n", "cfg.ini", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("cfg.ini:2"), HasSubstr("[rund]"), HasSubstr("run")));
}

TEST(SimConfigTest, MalformedLines) {
  SimConfig c;
  for (const char* text : {"[run]\nseed 5\n", "[run]\n= 5\n", "[run\nseed = 5\n"}) {
    absl::Status s = ApplyConfigText(text, "bad.ini", &c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), AllOf(HasSubstr("bad.ini:"), HasSubstr("malformed"))) << text;
  }
  absl::Status s = ApplyConfigText("seed = 5\n", "bad.ini", &c);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("bad.ini:1"), HasSubstr("outside any [section]"),
                                 HasSubstr("run.seed")));
}

TEST(SimConfigTest, DuplicateKeyNamesBothLines) {
  SimConfig c;
  absl::Status s = ApplyConfigText("[rounds]\ncohort = 1\nrounds = 2\ncohort = 3\n", "d.ini", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("d.ini:4"), HasSubstr("rounds.cohort"), HasSubstr("line 2")));
}

TEST(SimConfigTest, WrongTypesNameKeyAndLine) {
  SimConfig c;
  absl::Status s = ApplyConfigText("[rounds]\n\ncohort = ten\n", "t.ini", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("t.ini:3"),
                                 HasSubstr("rounds.cohort: expected an integer, got 'ten'")));
  s = ApplyConfigText("[local]\nlr = fast\n", "t.ini", &c);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("t.ini:2"), HasSubstr("local.lr"),
                                 HasSubstr("expected a finite number")));
  s = ApplyOverride("run.seed", "-1", &c);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("command line"), HasSubstr("run.seed"),
                                 HasSubstr("non-negative integer")));
  s = ApplyOverride("privacy.clip", "nan", &c);
  EXPECT_THAT(s.message(), HasSubstr("privacy.clip"));
  s = ApplyOverride("rounds.rounds", "1.5", &c);
  EXPECT_THAT(s.message(), HasSubstr("rounds.rounds: expected an integer, got '1.5'"));
  s = ApplyOverride("lora.targets", "q_proj,,v_proj", &c);
  EXPECT_THAT(s.message(), HasSubstr("lora.targets"));
  EXPECT_EQ(c.rounds, SimConfig{}.rounds);  // failed assignments leave the value alone
}

TEST(SimConfigTest, EnumValuesListAllowed) {
  struct Case {
    const char* key;
    const char* allowed;
  };
  for (const Case& k :
       {Case{"privacy.dp", "none, central, distributed"},
        Case{"server.optimizer", "fedavg, fedadam, fedyogi"},
        Case{"privacy.clip_mode", "fixed, adaptive"}, Case{"rounds.sampling", "fixed, poisson"},
        Case{"local.mode", "batched, sequential, auto"}, Case{"secagg.graph", "complete, kregular"}}) {
    SimConfig c;
    absl::Status s = ApplyConfigText(absl::StrCat(k.key, " = bogus\n"), "e.ini", &c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.key;
    EXPECT_THAT(s.message(), AllOf(HasSubstr("e.ini:1"), HasSubstr(k.key), HasSubstr("'bogus'"),
                                   HasSubstr(k.allowed)));
  }
}

TEST(SimConfigTest, OverrideUnknownKey) {
  SimConfig c;
  absl::Status s = ApplyOverride("privacy.noise", "1", &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("command line"), HasSubstr("'privacy.noise'"),
                                 HasSubstr("did you mean privacy.noise_multiplier?")));
  s = ApplyOverride("server.optimiser", "fedadam", &c);
  EXPECT_THAT(s.message(), HasSubstr("did you mean server.optimizer?"));
  s = ApplyOverride("lora.target", "q_proj", &c);
  EXPECT_THAT(s.message(), HasSubstr("did you mean lora.targets?"));
}

TEST(SimConfigTest, ApplyConfigFileReadsAndNamesPath) {
  const std::string path = ::testing::TempDir() + "/sim_config_test.ini";
  {
    std::ofstream f(path);
    f << "[lora]\nrank = 16\n[server]\nlr = 2x\n";
  }
  SimConfig c;
  absl::Status s = ApplyConfigFile(path, &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr(path + ":4"), HasSubstr("server.lr")));
  EXPECT_EQ(c.rank, 16);
  EXPECT_EQ(ApplyConfigFile(path + ".missing", &c).code(), absl::StatusCode::kNotFound);
}

// Sets `key` to `value`, then expects validation to fail naming `key`.
void ExpectInvalid(const std::string& key, const std::string& value,
                   const std::string& before_key = "", const std::string& before_value = "") {
  SimConfig c;
  if (!before_key.empty()) {
    ASSERT_TRUE(ApplyOverride(before_key, before_value, &c).ok());
  }
  ASSERT_TRUE(ApplyOverride(key, value, &c).ok()) << key;
  absl::Status s = ValidateConfig(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key << "=" << value;
  EXPECT_THAT(s.message(), HasSubstr(key + ":")) << key << "=" << value;
}

TEST(SimConfigTest, ValidationNamesTheKey) {
  ExpectInvalid("rounds.rounds", "0");
  ExpectInvalid("rounds.cohort", "0");
  ExpectInvalid("rounds.cohort", "201");  // > devices = 200
  ExpectInvalid("data.devices", "-1");
  ExpectInvalid("lora.rank", "0");
  ExpectInvalid("local.seq_len", "0");
  ExpectInvalid("local.batch", "0");
  ExpectInvalid("data.test_fraction", "1");
  ExpectInvalid("data.heldout_fraction", "-0.1");
  ExpectInvalid("rounds.poisson_rate", "1.5");
  ExpectInvalid("privacy.noise_multiplier", "0");
  ExpectInvalid("privacy.clip", "0");
  ExpectInvalid("privacy.bits", "7");
  ExpectInvalid("privacy.bits", "33");
  ExpectInvalid("privacy.delta", "1");
  ExpectInvalid("privacy.epsilon_budget", "-1");
  ExpectInvalid("lora.targets", "q_proj,lm_head");
  ExpectInvalid("lora.targets", "q_proj,q_proj");
  ExpectInvalid("local.optimizer", "rmsprop");
  ExpectInvalid("data.format", "csv");
  ExpectInvalid("secagg.dropout_masked", "1");
  ExpectInvalid("server.beta2", "1");
  ExpectInvalid("pretrain.heads", "3");  // 128 % 3 != 0
  ExpectInvalid("privacy.target_quantile", "1", "privacy.clip_mode", "adaptive");
  ExpectInvalid("local.steps", "0");  // and local.epochs = 0
}

TEST(SimConfigTest, ValidationEdgesThatAreAllowed) {
  SimConfig c;
  c.devices = 0;  // all users: cohort is not bounded here
  c.cohort = 10000;
  c.dp = DpMode::kNone;
  c.noise_multiplier = 0;
  c.poisson_rate = 1;
  c.bits = 32;
  c.model = "/some/model";
  c.pretrain_heads = 3;  // pretraining is not used with a model
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

TEST(SimConfigTest, ValidationReportsAllProblems) {
  SimConfig c;
  c.rounds = 0;
  c.rank = -1;
  absl::Status s = ValidateConfig(c);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("rounds.rounds"), HasSubstr("lora.rank")));
}

TEST(SimConfigTest, ConfigToJsonHasEveryKey) {
  SimConfig c;
  c.dp = DpMode::kCentral;
  c.cohort = 17;
  c.targets = {"q_proj", "o_proj"};
  const nlohmann::json j = ConfigToJson(c);
  const std::vector<ConfigKeyDoc> keys = ConfigKeys();
  EXPECT_EQ(j.size(), keys.size());
  for (const ConfigKeyDoc& k : keys) EXPECT_TRUE(j.contains(k.key)) << k.key;
  EXPECT_EQ(j["privacy.dp"], "central");
  EXPECT_EQ(j["rounds.cohort"], 17);
  EXPECT_EQ(j["lora.targets"], nlohmann::json({"q_proj", "o_proj"}));
  EXPECT_EQ(j["output.plots"], true);
}

TEST(SimConfigTest, ConfigKeysDocumentedAndReparseable) {
  const std::vector<ConfigKeyDoc> keys = ConfigKeys();
  EXPECT_GE(keys.size(), 60u);
  std::set<std::string> names;
  SimConfig c;
  for (const ConfigKeyDoc& k : keys) {
    EXPECT_TRUE(names.insert(k.key).second) << "duplicate " << k.key;
    EXPECT_FALSE(k.description.empty()) << k.key;
    EXPECT_EQ(std::count(k.key.begin(), k.key.end(), '.'), 1) << k.key;
    // Every documented default parses back (empty strings included).
    EXPECT_TRUE(ApplyOverride(k.key, k.default_value, &c).ok()) << k.key << "=" << k.default_value;
  }
  EXPECT_EQ(ConfigToJson(c), ConfigToJson(SimConfig{}));
}

TEST(SimConfigTest, ConfigJsonRoundTripsThroughOverrides) {
  SimConfig a;
  ASSERT_TRUE(ApplyConfigText(kFullConfig, "full.ini", &a).ok());
  const nlohmann::json j = ConfigToJson(a);
  SimConfig b;
  for (const auto& [key, value] : j.items()) {
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_array()) {
      for (const auto& v : value) text += (text.empty() ? "" : ",") + v.get<std::string>();
    } else {
      text = value.dump();
    }
    ASSERT_TRUE(ApplyOverride(key, text, &b).ok()) << key << "=" << text;
  }
  EXPECT_EQ(ConfigToJson(b), j);
}

TEST(SimConfigTest, DpModeNames) {
  EXPECT_STREQ(DpModeName(DpMode::kNone), "none");
  EXPECT_STREQ(DpModeName(DpMode::kCentral), "central");
  EXPECT_STREQ(DpModeName(DpMode::kDistributed), "distributed");
}

// docs/sim.md of the source tree (FEDLORA_SOURCE_DIR; __FILE__ is relative under ccache's
// base_dir).
std::string ReadSimDoc() {
  const std::filesystem::path doc = std::filesystem::path(FEDLORA_SOURCE_DIR) / "docs" / "sim.md";
  std::ifstream in(doc);
  EXPECT_TRUE(in.good()) << "cannot read " << doc;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// docs/sim.md is the config reference: it must mention every key and its default.
TEST(SimConfigTest, DocsMentionEveryKey) {
  const std::string doc = ReadSimDoc();
  ASSERT_FALSE(doc.empty());
  for (const ConfigKeyDoc& k : ConfigKeys()) {
    const std::string value =
        k.default_value.empty() ? "(empty)" : absl::StrCat("`", k.default_value, "`");
    const std::string row = absl::StrCat("| `", k.key, "` | ", value, " |");
    EXPECT_TRUE(absl::StrContains(doc, row)) << "docs/sim.md lacks the row start " << row;
  }
}

// The example config in docs/sim.md parses and validates.
TEST(SimConfigTest, DocsExampleIsValid) {
  const std::string doc = ReadSimDoc();
  const size_t start = doc.find("```ini\n");
  ASSERT_NE(start, std::string::npos) << "docs/sim.md has no ```ini example";
  const size_t end = doc.find("```", start + 7);
  ASSERT_NE(end, std::string::npos);
  SimConfig c;
  const absl::Status parsed = ApplyConfigText(doc.substr(start + 7, end - start - 7), "sim.md", &c);
  ASSERT_TRUE(parsed.ok()) << parsed;
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  EXPECT_NE(ConfigToJson(c), ConfigToJson(SimConfig{}));
}

// --print-config's INI reads back to the same config, for defaults and for changed values.
TEST(SimConfigTest, ConfigToIniRoundTrips) {
  SimConfig changed;
  ASSERT_TRUE(ApplyOverride("rounds.rounds", "7", &changed).ok());
  ASSERT_TRUE(ApplyOverride("lora.targets", "q_proj,k_proj", &changed).ok());
  ASSERT_TRUE(ApplyOverride("privacy.dp", "central", &changed).ok());
  for (const SimConfig& c : {SimConfig{}, changed}) {
    const std::string ini = ConfigToIni(c);
    SimConfig back;
    back.rounds = 99;  // must be overwritten by the file
    const absl::Status s = ApplyConfigText(ini, "printed.ini", &back);
    ASSERT_TRUE(s.ok()) << s << "\n" << ini;
    EXPECT_EQ(ConfigToJson(back), ConfigToJson(c));
  }
  EXPECT_THAT(ConfigToIni(changed), ::testing::HasSubstr("rounds = 7"));
}

}  // namespace
}  // namespace fedlora::sim
