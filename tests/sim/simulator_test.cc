// End-to-end tests of the simulator on a tiny model over synthetic personas.
#include "fedlora/sim/simulator.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/file_util.h"
#include "fedlora/data/personas.h"
#include "fedlora/model/checkpoint.h"
#include "fedlora/model/tokenizer.h"
#include "fedlora/privacy/defaults.h"
#include "fedlora/sim/cohort_trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim_testutil.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;

TEST(SimulatorTest, DistributedDpRunReportsMetricsAndEpsilon) {
  SimConfig c = SmallConfig("fedlora_sim_dist");
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rounds.size(), 2u);
  EXPECT_EQ(r->rounds[0].sampled, 6);
  EXPECT_EQ(r->rounds[0].survivors, 6);
  EXPECT_GT(r->rounds[0].epsilon, 0);
  EXPECT_GT(r->rounds[1].epsilon, r->rounds[0].epsilon);
  EXPECT_TRUE(std::isfinite(r->summary.epsilon));
  // Against the coordinator: a device sampled into both rounds pays for both, unamplified.
  EXPECT_EQ(r->summary.max_rounds_per_device, 2);
  EXPECT_GT(r->rounds[1].epsilon_coordinator, r->rounds[0].epsilon_coordinator);
  EXPECT_GE(r->summary.epsilon_coordinator, r->summary.epsilon);
  EXPECT_TRUE(std::isfinite(r->summary.epsilon_coordinator));
  ASSERT_TRUE(r->summary.participants.has_value());
  ASSERT_TRUE(r->summary.heldout.has_value());
  EXPECT_GT(r->summary.participants->base.perplexity, 1.0);
  EXPECT_GT(r->summary.participants->global.tokens, 0);
  EXPECT_EQ(r->summary.delta, privacy::DefaultDelta(12));  // the one default: 1e-5 here
  // The keyboard metrics, and the per-user counts that add up to the evaluated users.
  for (const auto* e : {&*r->summary.participants, &*r->summary.heldout}) {
    for (const Metrics* m : {&e->base, &e->global, &e->personalized}) {
      EXPECT_GE(m->keystroke_savings, 0.0);
      EXPECT_LT(m->keystroke_savings, 1.0);
    }
    for (const UserShift* u :
         {&e->global_vs_base_top3, &e->global_vs_base_keystrokes, &e->personalized_vs_global_top3,
          &e->personalized_vs_global_keystrokes}) {
      EXPECT_EQ(u->gain + u->lose + u->same, e->users) << e->population;
    }
    const nlohmann::json j = e->ToJson();
    EXPECT_TRUE(j["global"].contains("keystroke_savings"));
    EXPECT_TRUE(j["users_personalized_vs_global"]["keystroke_savings"].contains("share_gain"));
  }
}

// FFA-LoRA: A stays bit-identical to its seeded init through local training, noise, secure
// aggregation and the server step; only B moves. Plain LoRA moves A (so the check can fail).
// FedSA-LoRA: the other way round on the server: devices keep their B, the global B stays at
// its init, only A is aggregated.
TEST(SimulatorTest, FfaAndFedSaLoraShareOnlyTheirHalf) {
  auto config = model::LoadLlamaConfig(TinyModelDir() + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  adapters::LoraConfig lc;
  lc.rank = 2;
  lc.alpha = 4;
  for (const std::string method : {"ffa", "lora", "fedsa"}) {
    SimConfig c = SmallConfig("fedlora_sim_" + method);
    c.lora_method = method;
    auto r = RunSim(c);
    ASSERT_TRUE(r.ok()) << r.status();
    auto init = adapters::LoraAdapter::Create(*config, lc, c.seed);
    ASSERT_TRUE(init.ok());
    const std::vector<float> start = init->Flatten();
    ASSERT_EQ(r->global_adapter.size(), start.size());
    std::vector<bool> is_b(start.size(), false);
    for (size_t i : FlatBIndices(*init)) is_b[i] = true;
    size_t a_moved = 0, b_moved = 0;
    for (size_t i = 0; i < start.size(); ++i) {
      const bool same = std::memcmp(&start[i], &r->global_adapter[i], sizeof(float)) == 0;
      (is_b[i] ? b_moved : a_moved) += !same;
    }
    if (method == "fedsa") {
      EXPECT_EQ(b_moved, 0u) << "FedSA-LoRA aggregated B";
      EXPECT_GT(a_moved, 0u);
      // Participants personalize from their own B: not the global adapter's numbers.
      EXPECT_NE(r->summary.participants->personalized.perplexity,
                r->summary.participants->global.perplexity);
      continue;
    }
    EXPECT_GT(b_moved, 0u) << method;
    if (method == "ffa") {
      EXPECT_EQ(a_moved, 0u) << "FFA-LoRA changed A";
    } else {
      EXPECT_GT(a_moved, 0u) << "plain LoRA should train A";
    }
  }
}

// The final evaluation scores every personalization method on the same users and global
// adapter; the run's own method is the "personalized" row, and its suggestion latency is
// measured. Without the held-back check every user keeps what finetune and dual train.
TEST(SimulatorTest, PersonalizationMethodsSideBySide) {
  SimConfig c = SmallConfig("fedlora_sim_methods");
  c.personalize = "ditto";
  c.personalize_val_fraction = 0;
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto* e : {&r->summary.participants, &r->summary.heldout}) {
    ASSERT_TRUE(e->has_value());
    const EvalRecord& rec = **e;
    EXPECT_EQ(rec.personalize_method, "ditto");
    ASSERT_EQ(rec.methods.size(), 6u);
    const char* names[] = {"ngram", "ngram_base", "finetune", "dual", "ditto", "interpolate"};
    for (size_t i = 0; i < 6; ++i) {
      const MethodRecord& m = rec.methods[i];
      EXPECT_EQ(m.method, names[i]);
      const UserShift& u = m.vs_global_keystrokes;
      EXPECT_EQ(u.gain + u.lose + u.same, rec.users);
      EXPECT_GT(m.metrics.words, 0);
    }
    EXPECT_EQ(rec.methods[4].metrics.ToJson(), rec.personalized.ToJson());
    EXPECT_EQ(rec.methods[2].kept, rec.users);
    EXPECT_EQ(rec.methods[3].kept, rec.users);
    // Personal models differ from the global one and from each other.
    EXPECT_NE(rec.methods[2].metrics.perplexity, rec.global.perplexity);
    EXPECT_NE(rec.methods[3].metrics.perplexity, rec.methods[2].metrics.perplexity);
    // The n-gram rows run the federated model (ngram) and the base (ngram_base).
    EXPECT_NEAR(rec.methods[0].metrics.perplexity, rec.global.perplexity,
                1e-4 * rec.global.perplexity);
    EXPECT_NEAR(rec.methods[1].metrics.perplexity, rec.base.perplexity, 1e-4 * rec.base.perplexity);
    EXPECT_GT(rec.suggest_calls, 0);
    EXPECT_GT(rec.suggest_p50_ms, 0);
    EXPECT_LE(rec.suggest_p50_ms, rec.suggest_p95_ms);
  }
}

// The default: the lexicon strip for every row and the personal word n-gram as the
// personalization. The user's own lines (her names, places, habits) raise both keyboard
// metrics over the federated model; the greedy strip (the old metrics) stays available.
TEST(SimulatorTest, PersonalNgramOnTheLexiconStripByDefault) {
  SimConfig c = SmallConfig("fedlora_sim_ngram");
  c.data = "personas:lines=60";  // the main job's lines per user: 38 to count, 9 held back
  c.personalize_compare = false;
  EXPECT_EQ(c.personalize, "ngram");
  EXPECT_EQ(c.strip, "lexicon");
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto* e : {&r->summary.participants, &r->summary.heldout}) {
    ASSERT_TRUE(e->has_value());
    const EvalRecord& rec = **e;
    EXPECT_EQ(rec.personalize_method, "ngram");
    EXPECT_GT(rec.personalized.keystroke_savings, rec.global.keystroke_savings + 0.05)
        << rec.population;
    EXPECT_GT(rec.personalized.next_word_top3, rec.global.next_word_top3);
    EXPECT_GT(rec.suggest_calls, 0);
  }
  c.strip = "greedy";
  c.personalize = "interpolate";
  auto greedy = RunSim(c);
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  EXPECT_EQ(greedy->summary.participants->global.perplexity,
            r->summary.participants->global.perplexity);
  EXPECT_NE(greedy->summary.participants->global.keystroke_savings,
            r->summary.participants->global.keystroke_savings);
  c.personalize = "ngram";  // needs the lexicon
  EXPECT_FALSE(RunSim(c).ok());
}

// rounds.learn_typed: the personal counts learn the test lines as they are typed. The global
// rows are untouched; the personas repeat their own phrases, so learning them saves more.
TEST(SimulatorTest, LearnTypedLinesReachesThePersonalRows) {
  SimConfig c = SmallConfig("fedlora_sim_learn_typed");
  c.data = "personas:lines=60";
  c.personalize_compare = false;
  auto fixed = RunSim(c);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  c.learn_typed = true;
  auto learning = RunSim(c);
  ASSERT_TRUE(learning.ok()) << learning.status();
  for (bool held : {false, true}) {
    const EvalRecord& a = held ? *fixed->summary.heldout : *fixed->summary.participants;
    const EvalRecord& b = held ? *learning->summary.heldout : *learning->summary.participants;
    EXPECT_EQ(a.global.keystroke_savings, b.global.keystroke_savings) << a.population;
    EXPECT_EQ(a.personalized.words, b.personalized.words);  // the same words scored
    EXPECT_GT(b.personalized.keystroke_savings, a.personalized.keystroke_savings) << a.population;
  }
  // The report says the evaluation learnt while typing (it departs from the fixed protocol).
  const std::string dir = (fs::path(c.out) / "report").string();
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  for (const RoundRecord& r : learning->rounds) ASSERT_TRUE(w->AppendRound(r).ok());
  ASSERT_TRUE(w->Finish(learning->summary).ok());
  auto md = ReadFileToString((fs::path(dir) / "report.md").string());
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_THAT(*md, ::testing::HasSubstr("its counts learn each line once it has been typed"));
}

// rounds.strip_second_pieces reaches every row's strip: the same model and text, other
// keyboard metrics; K = 0 is the first-piece formula. Out-of-range settings are refused.
TEST(SimulatorTest, StripSecondPiecesReachTheEvaluation) {
  SimConfig c = SmallConfig("fedlora_sim_second");
  c.data = "personas:lines=60";
  c.personalize_compare = false;
  c.strip_second_pieces = 0;
  auto first = RunSim(c);
  ASSERT_TRUE(first.ok()) << first.status();
  c.strip_second_pieces = 8;
  c.strip_second_weight = 1;
  auto second = RunSim(c);
  ASSERT_TRUE(second.ok()) << second.status();
  const EvalRecord& a = *first->summary.participants;
  const EvalRecord& b = *second->summary.participants;
  EXPECT_EQ(a.global.perplexity, b.global.perplexity);
  EXPECT_TRUE(a.global.keystroke_savings != b.global.keystroke_savings ||
              a.global.next_word_top3 != b.global.next_word_top3);
  c.strip_second_pieces = -1;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.strip_second_pieces = 4;
  c.strip_second_weight = 1.5;
  EXPECT_FALSE(ValidateConfig(c).ok());
}

TEST(SimulatorTest, InterpolationWeightPerUserOrPooled) {
  SimConfig c = SmallConfig("fedlora_sim_interp_fit");
  c.personalize = "interpolate";
  c.personalize_compare = false;
  c.personalize_val_fraction = 0.3;
  c.personalize_steps = 20;  // enough for each user's own lines to pull the loss down
  c.eval_users = 6;
  c.interpolate_with = "finetune";
  // Pooled: one weight for the whole group, so every user or none runs the mixture.
  c.interpolate_fit = "pooled";
  auto pooled = RunSim(c);
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  // Per user by held-back loss.
  c.interpolate_fit = "loss";
  auto by_loss = RunSim(c);
  ASSERT_TRUE(by_loss.ok()) << by_loss.status();
  for (const auto* p : {&pooled->summary.participants, &pooled->summary.heldout}) {
    ASSERT_TRUE(p->has_value());
    EXPECT_TRUE((*p)->personalized_kept == 0 || (*p)->personalized_kept == (*p)->users)
        << (*p)->personalized_kept << " of " << (*p)->users;
  }
  // Participants' own lines pull the loss down: the loss fit keeps mixtures and lowers
  // their test perplexity.
  EXPECT_GT(by_loss->summary.participants->personalized_kept, 0);
  EXPECT_LT(by_loss->summary.participants->personalized.perplexity,
            by_loss->summary.participants->global.perplexity);
  // The dual model as the personal side: another mixture of the same users.
  c.interpolate_with = "dual";
  auto with_dual = RunSim(c);
  ASSERT_TRUE(with_dual.ok()) << with_dual.status();
  EXPECT_NE(with_dual->summary.participants->personalized.perplexity,
            by_loss->summary.participants->personalized.perplexity);
  c.interpolate_with = "finetune";
  c.interpolate_fit = "median";
  EXPECT_FALSE(RunSim(c).ok());
  c.interpolate_fit = "loss";
  c.interpolate_with = "both";
  EXPECT_FALSE(RunSim(c).ok());
}

TEST(SimulatorTest, SameSeedRepeatsMetrics) {
  SimConfig c = SmallConfig("fedlora_sim_repeat");
  auto a = RunSim(c);
  auto b = RunSim(c);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->global_adapter, b->global_adapter);
  EXPECT_EQ(a->summary.participants->global.perplexity, b->summary.participants->global.perplexity);
  EXPECT_EQ(a->summary.epsilon, b->summary.epsilon);
  c.seed = 2;
  auto d = RunSim(c);
  ASSERT_TRUE(d.ok());
  EXPECT_NE(a->global_adapter, d->global_adapter);
}

TEST(SimulatorTest, BatchedAndSequentialGiveTheSameGlobalAdapter) {
  SimConfig c = SmallConfig("fedlora_sim_modes");
  c.dp = DpMode::kNone;
  c.rounds = 1;
  c.eval_every = 1;
  c.personalize_steps = 0;
  c.train_mode = TrainMode::kBatched;
  auto batched = RunSim(c);
  c.train_mode = TrainMode::kSequential;
  auto sequential = RunSim(c);
  ASSERT_TRUE(batched.ok()) << batched.status();
  ASSERT_TRUE(sequential.ok()) << sequential.status();
  ASSERT_EQ(batched->global_adapter.size(), sequential->global_adapter.size());
  double max_diff = 0;
  for (size_t i = 0; i < batched->global_adapter.size(); ++i) {
    max_diff = std::max(
        max_diff, std::abs(double(batched->global_adapter[i]) - sequential->global_adapter[i]));
  }
  EXPECT_LT(max_diff, 1e-5);
  // The evaluation of the same adapters agrees too.
  EXPECT_NEAR(batched->summary.participants->global.perplexity,
              sequential->summary.participants->global.perplexity, 1e-3);
}

// local.mode = auto (the default) batches devices on small models, where batching measured
// faster, and trains them one by one above; explicit modes are kept as they are.
TEST(SimulatorTest, AutoModeBatchesOnlySmallModels) {
  EXPECT_EQ(SimConfig().train_mode, TrainMode::kAuto);
  model::LlamaConfig small, large;
  small.hidden_size = kBatchedMaxHidden;
  large.hidden_size = 2 * kBatchedMaxHidden;
  EXPECT_EQ(ResolveTrainMode(TrainMode::kAuto, small), TrainMode::kBatched);
  EXPECT_EQ(ResolveTrainMode(TrainMode::kAuto, large), TrainMode::kSequential);
  EXPECT_EQ(ResolveTrainMode(TrainMode::kBatched, large), TrainMode::kBatched);
  EXPECT_EQ(ResolveTrainMode(TrainMode::kSequential, small), TrainMode::kSequential);
}

TEST(SimulatorTest, DropoutsAreReportedAndSurvivorsAggregated) {
  SimConfig c = SmallConfig("fedlora_sim_drop");
  c.rounds = 2;
  c.devices = 20;
  c.cohort = 12;
  c.dropout_masked = 0.25;
  c.min_survivors = 0.5;
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  int dropped = 0;
  for (const auto& rec : r->rounds) {
    if (!rec.aborted) {
      EXPECT_EQ(rec.survivors + static_cast<int>(rec.dropped.size()), rec.sampled);
    }
    for (const auto& d : rec.dropped) {
      EXPECT_EQ(d.phase, "masked_input");
      EXPECT_FALSE(d.user.empty());
      ++dropped;
    }
  }
  EXPECT_GT(dropped, 0);
}

TEST(SimulatorTest, BudgetRefusesOrStops) {
  SimConfig c = SmallConfig("fedlora_sim_budget");
  c.dp = DpMode::kCentral;
  c.epsilon_budget = 1e-3;
  auto refused = Simulator::Create(c);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("privacy.epsilon_budget"));
  // A budget between the epsilon of 1 and 3 rounds stops the run early.
  c.epsilon_budget = 0;
  c.rounds = 3;
  auto full = RunSim(c);
  ASSERT_TRUE(full.ok());
  c.epsilon_budget = (full->rounds[0].epsilon + full->rounds[1].epsilon) / 2;
  auto stopped = RunSim(c);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->summary.rounds_completed, 1);
  EXPECT_THAT(stopped->summary.stop_reason, ::testing::HasSubstr("epsilon_budget"));
  EXPECT_LE(stopped->summary.epsilon, c.epsilon_budget);
  EXPECT_TRUE(stopped->summary.participants.has_value());
}

TEST(SimulatorTest, ReportStatesTheAccountingAssumptionAndSeededNoise) {
  SimConfig c = SmallConfig("fedlora_sim_assume");
  c.rounds = 1;
  c.eval_every = 1;
  c.personalize_steps = 0;
  auto fixed = RunSim(c);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_THAT(fixed->summary.privacy_assumption, ::testing::HasSubstr("replace one"));
  EXPECT_THAT(fixed->summary.randomness, ::testing::HasSubstr("seeded"));
  EXPECT_THAT(fixed->summary.ToJson().dump(), ::testing::HasSubstr("privacy_assumption"));
  c.sampling = SamplingMode::kPoisson;
  c.poisson_rate = 0.9;  // large enough that min_clients usually survive
  auto poisson = RunSim(c);
  ASSERT_TRUE(poisson.ok()) << poisson.status();
  EXPECT_THAT(poisson->summary.privacy_assumption, ::testing::HasSubstr("add/remove"));
}

// The report says how the packed base multiplies (int8 or float32), and a bad switch is named.
TEST(SimulatorTest, ReportNamesThePackedBasesArithmetic) {
  SimConfig c = SmallConfig("fedlora_sim_arith");
  c.compress = "rtn";
  setenv("FEDLORA_INT8_COMPUTE", "on", 1);
  auto on = Simulator::Create(c);
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_THAT((*on)->base_description(), ::testing::HasSubstr("int8 arithmetic"));
  setenv("FEDLORA_INT8_COMPUTE", "off", 1);
  auto off = Simulator::Create(c);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_THAT((*off)->base_description(), ::testing::HasSubstr("products in float32"));
  setenv("FEDLORA_INT8_COMPUTE", "fast", 1);
  auto bad = Simulator::Create(c);
  unsetenv("FEDLORA_INT8_COMPUTE");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("FEDLORA_INT8_COMPUTE='fast'"));
}

// Rounds whose survivors fall below min_clients are neither applied nor charged.
TEST(SimulatorTest, RoundsBelowMinClientsAreNotReleasedNorCharged) {
  SimConfig c = SmallConfig("fedlora_sim_minclients");
  c.rounds = 4;
  c.eval_every = 4;
  c.personalize_steps = 0;
  c.min_survivors = 1.0;  // every sampled device must survive
  c.dropout_masked = 0.15;
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  int aborted = 0;
  double prev = 0;
  for (const auto& rec : r->rounds) {
    if (rec.aborted) {
      ++aborted;
      EXPECT_FALSE(rec.abort_reason.empty());
      EXPECT_EQ(rec.epsilon, prev);
      EXPECT_EQ(rec.survivors, 0);
    } else {
      EXPECT_GT(rec.epsilon, prev);
    }
    prev = rec.epsilon;
  }
  EXPECT_GT(aborted, 0);
}

TEST(SimulatorTest, BadModelDirIsAClearError) {
  SimConfig c = SmallConfig("fedlora_sim_bad");
  c.model = "/nonexistent/model";
  auto r = Simulator::Create(c);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("/nonexistent/model"));
}

}  // namespace
}  // namespace fedlora::sim
