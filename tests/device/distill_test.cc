// Knowledge distillation: the loss against a hand computation, a short distillation from the
// Hugging Face fixture teacher (KL falls, the saved student loads), student configs and
// --init truncate, and `fedlora distill` end to end including its error paths.
#include "fedlora/device/distill.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "device_testutil.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using fedlora::testing::MakeLines;
using ::testing::HasSubstr;

const std::string& TeacherDir() {
  static const std::string d = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
  return d;
}

std::string TempDir(const std::string& name) {
  auto d =
      fs::temp_directory_path() / ("fedlora_distill_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  return d.string();
}

std::vector<std::string> Corpus() {
  std::vector<std::string> lines;
  for (int u = 0; u < 4; ++u) {
    for (auto& l : MakeLines(u, 30, 3)) lines.push_back(std::move(l));
  }
  return lines;
}

// KL(p || q) for p = softmax(a / T), q = softmax(b / T), in doubles.
double HandKl(const std::vector<double>& a, const std::vector<double>& b, double temp) {
  auto softmax = [temp](const std::vector<double>& x) {
    double mx = x[0];
    for (double v : x) mx = std::max(mx, v);
    std::vector<double> e(x.size());
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += (e[i] = std::exp((x[i] - mx) / temp));
    for (double& v : e) v /= s;
    return e;
  };
  std::vector<double> p = softmax(a), q = softmax(b);
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) kl += p[i] * std::log(p[i] / q[i]);
  return kl;
}

TEST(DistillLossTest, AlphaOneEqualsTemperatureSquaredTimesHandComputedKl) {
  torch::manual_seed(7);
  const int64_t n = 1, t = 3, v = 4;
  torch::Tensor student = torch::randn({n, t, v}) * 2;
  torch::Tensor teacher = torch::randn({n, t, v}) * 2;
  torch::Tensor ids = torch::tensor({0, 3, 1}, torch::kInt64).view({1, 3});
  const double temp = 2.5;
  auto row = [v](const torch::Tensor& x, int64_t pos) {
    std::vector<double> out;
    for (int64_t k = 0; k < v; ++k) out.push_back(x[0][pos][k].item<double>());
    return out;
  };
  // Positions 0 and 1 predict ids[1] and ids[2]; position 2 predicts nothing.
  const double kl0 = HandKl(row(teacher, 0), row(student, 0), temp);
  const double kl1 = HandKl(row(teacher, 1), row(student, 1), temp);
  DistillLossParts parts;
  torch::Tensor loss = DistillLoss(student, teacher, ids, {}, temp, 1.0, &parts);
  EXPECT_NEAR(parts.kl, (kl0 + kl1) / 2, 1e-5);
  EXPECT_NEAR(loss.item<double>(), temp * temp * (kl0 + kl1) / 2, 1e-5);
  // A masked target drops its position from the mean.
  torch::Tensor mask = torch::tensor({1, 1, 0}, torch::kInt64).view({1, 3});
  EXPECT_NEAR(DistillLoss(student, teacher, ids, mask, temp, 1.0).item<double>(), temp * temp * kl0,
              1e-5);
  // alpha = 0 is the plain next-token cross-entropy.
  EXPECT_NEAR(DistillLoss(student, teacher, ids, {}, temp, 0.0, &parts).item<double>(),
              model::NextTokenLoss(student, ids).item<double>(), 1e-5);
  EXPECT_NEAR(parts.ce, model::NextTokenLoss(student, ids).item<double>(), 1e-5);
  // A mix weighs both parts.
  EXPECT_NEAR(DistillLoss(student, teacher, ids, {}, temp, 0.3).item<double>(),
              0.3 * temp * temp * (kl0 + kl1) / 2 + 0.7 * parts.ce, 1e-5);
}

TEST(DistillLossTest, GradientReachesOnlyTheStudentAndVanishesAtTheTeacher) {
  torch::manual_seed(3);
  torch::Tensor teacher = torch::randn({2, 4, 5}).requires_grad_(true);
  torch::Tensor student = torch::randn({2, 4, 5}).requires_grad_(true);
  torch::Tensor ids = torch::randint(0, 5, {2, 4}, torch::kInt64);
  DistillLoss(student, teacher, ids, {}, 2.0, 1.0).backward();
  ASSERT_TRUE(student.grad().defined());
  EXPECT_GT(student.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(teacher.grad().defined());
  torch::Tensor same = teacher.detach().clone().requires_grad_(true);
  torch::Tensor loss = DistillLoss(same, teacher, ids, {}, 2.0, 1.0);
  EXPECT_NEAR(loss.item<double>(), 0.0, 1e-6);
  loss.backward();
  EXPECT_LT(same.grad().abs().max().item<double>(), 1e-6);
}

model::LlamaConfig Teacher() {
  model::LlamaConfig t;
  t.vocab_size = 512;
  t.hidden_size = 64;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 4;
  t.num_key_value_heads = 2;
  t.head_dim = 16;
  t.intermediate_size = 172;
  return t;
}

TEST(StudentConfigTest, DerivesUnsetSizesAndRefusesBadOnes) {
  DistillOptions o;
  o.hidden_size = 32;
  o.num_heads = 2;
  auto c = StudentConfig(Teacher(), o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->intermediate_size, 88);  // 172/64 * 32 = 86 -> multiple of 8
  EXPECT_EQ(c->vocab_size, 512);

  o.vocab_size = 300;
  auto vocab = StudentConfig(Teacher(), o);
  ASSERT_FALSE(vocab.ok());
  EXPECT_THAT(
      std::string(vocab.status().message()),
      ::testing::AllOf(HasSubstr("vocab_size 300"), HasSubstr("512"), HasSubstr("tokenizer")));
  o.vocab_size = 0;
  o.num_kv_heads = 3;
  auto kv = StudentConfig(Teacher(), o);
  ASSERT_FALSE(kv.ok());
  EXPECT_THAT(std::string(kv.status().message()), HasSubstr("--kv-heads 3 does not divide"));
  o.num_kv_heads = 0;
  o.hidden_size = 36;
  o.num_heads = 4;  // head size 9: odd
  auto odd = StudentConfig(Teacher(), o);
  ASSERT_FALSE(odd.ok());
  EXPECT_THAT(std::string(odd.status().message()), HasSubstr("--hidden 36"));
}

class DistillFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(TeacherDir() + "/model.safetensors")) GTEST_SKIP() << "shared fixtures absent";
    auto rt = LoadRuntime(TeacherDir());
    ASSERT_TRUE(rt.ok()) << rt.status();
    teacher_ = std::move(*rt);
  }
  Runtime teacher_;
};

TEST_F(DistillFixtureTest, TruncateCopiesTheTeachersFirstLayersWithoutAliasing) {
  DistillOptions o;
  o.num_layers = 1;
  o.init = StudentInit::kTruncate;
  auto c = StudentConfig(teacher_.model->config(), o);
  ASSERT_TRUE(c.ok()) << c.status();
  auto s = InitStudent(*teacher_.model, *c, o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->layers.size(), 1u);
  EXPECT_TRUE(torch::equal(s->embed_tokens, teacher_.model->embed_tokens));
  EXPECT_TRUE(torch::equal(s->lm_head, teacher_.model->lm_head));
  EXPECT_TRUE(torch::equal(s->layers[0].Get(model::Proj::kDown).weight,
                           teacher_.model->layers[0].Get(model::Proj::kDown).weight));
  EXPECT_NE(s->embed_tokens.data_ptr(), teacher_.model->embed_tokens.data_ptr());

  o.hidden_size = 32;
  o.num_heads = 2;
  auto narrow = StudentConfig(teacher_.model->config(), o);
  ASSERT_TRUE(narrow.ok()) << narrow.status();
  auto bad = InitStudent(*teacher_.model, *narrow, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(bad.status().message()),
      ::testing::AllOf(HasSubstr("hidden_size 32 (teacher 64)"), HasSubstr("--init random")));
}

TEST_F(DistillFixtureTest, ShortDistillationLowersKlAndTheSavedStudentLoads) {
  const std::string out = TempDir("student");
  DistillOptions o;
  o.hidden_size = 32;
  o.num_layers = 1;
  o.num_heads = 2;
  o.num_kv_heads = 1;
  o.seq_len = 32;
  o.temperature = 2.0;
  o.alpha = 1.0;  // soft labels only: the fixture teacher is random, its hard labels disagree
  o.train.max_steps = 60;
  o.train.batch_size = 8;
  o.train.seed = 5;
  o.train.optimizer.lr = 5e-3;
  o.train.optimizer.warmup_steps = 5;
  o.train.optimizer.schedule = OptimizerOptions::Schedule::kCosine;
  o.train.optimizer.max_grad_norm = 1.0;
  const std::vector<std::string> lines = Corpus();
  int64_t calls = 0;
  auto r = Distill(TeacherDir(), lines, out, o, false,
                   [&](const DistillStep& s) { calls += s.step == calls + 1 ? 1 : 1000; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(calls, 60);
  EXPECT_EQ(r->stats.steps, 60);
  ASSERT_EQ(r->stats.kl.size(), 60u);
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_LT(r->student_config.NumParameters(), r->teacher_config.NumParameters());
  // Training KL: the mean of the last ten steps below that of the first ten.
  double head = 0, tail = 0;
  for (int i = 0; i < 10; ++i) head += r->stats.kl[i], tail += r->stats.kl[50 + i];
  EXPECT_LT(tail, head);
  // Held-out KL (T = 1) falls too.
  EXPECT_GT(r->after.tokens, 0);
  EXPECT_LT(r->after.kl, r->before.kl);

  auto loaded = LoadRuntime(out);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model->config().hidden_size, 32);
  EXPECT_EQ(loaded->model->config().num_hidden_layers, 1);
  EXPECT_EQ(loaded->tokenizer->vocab_size(), teacher_.tokenizer->vocab_size());
  EXPECT_TRUE(fs::exists(out + "/fedlora_distill.json"));
  // The loaded student scores the held-out text like the trained one, with a finite perplexity,
  // and stays closer to the teacher than an untrained student of the same shape.
  const std::vector<std::string> held(lines.end() - r->heldout_lines, lines.end());
  TokenWindows w = MakeWindows(*teacher_.tokenizer, held, 32);
  auto trained = EvaluateDistill(*teacher_.model, *loaded->model, w);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_TRUE(std::isfinite(trained->student_perplexity()));
  EXPECT_GT(trained->student_perplexity(), 1.0);
  EXPECT_NEAR(trained->kl, r->after.kl, 1e-3);
  auto fresh = InitStudent(*teacher_.model, r->student_config, o);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  auto untrained = EvaluateDistill(*teacher_.model, *fresh, w);
  ASSERT_TRUE(untrained.ok()) << untrained.status();
  EXPECT_LT(trained->kl, untrained->kl);
  // A model against itself: zero KL, equal perplexities.
  auto self = EvaluateDistill(*teacher_.model, *teacher_.model, w);
  ASSERT_TRUE(self.ok());
  EXPECT_NEAR(self->kl, 0.0, 1e-6);
  EXPECT_DOUBLE_EQ(self->teacher_nll, self->student_nll);

  // The directory now holds a model: refused without overwrite, naming --force.
  auto again = Distill(TeacherDir(), lines, out, o);
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("--force"));
  fs::remove_all(out);
}

TEST(DistillCliTest, DistillsSavesALoadableStudentAndRefusesBadInput) {
  if (!fs::exists(TeacherDir() + "/model.safetensors")) GTEST_SKIP() << "shared fixtures absent";
  const std::string dir = TempDir("cli");
  fs::create_directories(dir);
  auto run = [&](const std::string& args) { return fedlora::testing::RunFedlora(args, dir); };
  const std::string data = dir + "/corpus.txt";
  {
    std::ofstream f(data);
    for (const auto& l : Corpus()) f << l << "\n";
  }
  const std::string out = dir + "/student";
  const std::string base = "distill --teacher " + TeacherDir() + " --data " + data + " --out " +
                           out + " --seq 32 --batch 8 --warmup 2 --lr 5e-3 --threads 1";
  auto r = run(base + " --hidden 32 --layers 1 --heads 2 --kv-heads 1 --alpha 1 --steps 30 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["steps"], 30);
  EXPECT_EQ(j["student"]["hidden"], 32);
  EXPECT_LT(j["student_parameters"].get<int64_t>(), j["teacher_parameters"].get<int64_t>());
  EXPECT_LT(j["heldout_kl"].get<double>(), j["heldout_kl_before"].get<double>());
  EXPECT_TRUE(std::isfinite(j["student_perplexity"].get<double>()));
  EXPECT_TRUE(std::isfinite(j["teacher_perplexity"].get<double>()));
  EXPECT_GT(j["seconds"].get<double>(), 0.0);
  // The student is a model directory the other commands load.
  auto ppl = run("perplexity --model " + out + " " + data + " --json");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  auto pj = nlohmann::json::parse(ppl.out, nullptr, false);
  ASSERT_FALSE(pj.is_discarded()) << ppl.out;
  EXPECT_TRUE(std::isfinite(pj["perplexity"].get<double>()));

  // Bad input: an existing --out without --force, missing data, truncate across widths,
  // alpha out of range. Each fails with a message that says what to do.
  auto exists = run(base + " --hidden 32 --heads 2 --steps 30");
  EXPECT_NE(exists.exit_code, 0);
  EXPECT_THAT(exists.err, HasSubstr("--force"));
  auto forced = run(base + " --layers 1 --init truncate --steps 2 --force --json");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  auto cfg = nlohmann::json::parse(ReadFileToString(out + "/config.json").value_or("{}"));
  EXPECT_EQ(cfg["hidden_size"], 64);  // the teacher's width: the forced run replaced the model
  EXPECT_EQ(cfg["num_hidden_layers"], 1);
  auto missing = run("distill --teacher " + TeacherDir() + " --data " + dir + "/nope.txt --out " +
                     dir + "/s2");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, ::testing::AllOf(HasSubstr("nope.txt"), HasSubstr("hint")));
  EXPECT_FALSE(fs::exists(dir + "/s2"));
  auto truncate = run("distill --teacher " + TeacherDir() + " --data " + data + " --out " + dir +
                      "/s3 --hidden 32 --heads 2 --init truncate");
  EXPECT_NE(truncate.exit_code, 0);
  EXPECT_THAT(truncate.err, HasSubstr("hidden_size 32 (teacher 64)"));
  auto alpha = run("distill --teacher " + TeacherDir() + " --data " + data + " --out " + dir +
                   "/s4 --alpha 1.5");
  EXPECT_NE(alpha.exit_code, 0);
  EXPECT_THAT(alpha.err, HasSubstr("--alpha"));
  // A student larger than the teacher is allowed, with a warning.
  auto big = run("distill --teacher " + TeacherDir() + " --data " + data + " --out " + dir +
                 "/big --hidden 96 --heads 4 --seq 16 --batch 2 --steps 1 --warmup 0 --json");
  EXPECT_EQ(big.exit_code, 0) << big.err;
  EXPECT_THAT(big.err, HasSubstr("warning: the student"));
  auto help = run("distill --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, ::testing::AllOf(HasSubstr("Examples:"), HasSubstr("--steps INT=300")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::device
