// Evaluation of base, global and personalized models on users' test text.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/sim/cohort_trainer.h"
#include "sim_state.h"

namespace fedlora::sim {

Metrics ToMetrics(const device::TextMetrics& m) {
  Metrics out;
  out.perplexity = m.perplexity();
  out.next_token_top1 = m.next_token_top1();
  out.next_word_top3 = m.next_word_top3();
  out.keystroke_savings = m.keystroke_savings();
  out.tokens = m.tokens;
  out.words = m.words;
  return out;
}

namespace {

void Count(double before, double after, UserShift* shift) {
  if (after > before + 1e-12) {
    ++shift->gain;
  } else if (after < before - 1e-12) {
    ++shift->lose;
  } else {
    ++shift->same;
  }
}

// Per-user metrics of the model as it is now.
std::vector<device::TextMetrics> PerUser(const model::LlamaModel& model,
                                         const model::Tokenizer& tok,
                                         const std::vector<std::vector<std::string>>& tests) {
  std::vector<device::TextMetrics> out;
  for (const auto& t : tests) out.push_back(device::EvaluateTexts(model, tok, t));
  return out;
}

device::TextMetrics Sum(const std::vector<device::TextMetrics>& per_user) {
  device::TextMetrics sum;
  for (const auto& m : per_user) sum.Add(m);
  return sum;
}

}  // namespace

absl::StatusOr<EvalRecord> Evaluate(Simulator::State* s, const std::string& population,
                                    const std::vector<int>& users,
                                    std::optional<Metrics>* base_cache) {
  const SimConfig& c = s->config;
  EvalRecord rec;
  rec.population = population;
  rec.users = static_cast<int>(users.size());
  if (users.empty()) return rec;
  model::LlamaModel& model = *s->rt.model;
  const model::Tokenizer& tok = *s->rt.tokenizer;
  // Test text, personalization windows and validation lines of each evaluated user: the last
  // personalize_val_fraction of the train lines (at least one, when the user has 5 or more)
  // decide whether personalizing helped; the rest are trained on.
  std::vector<std::vector<std::string>> tests, vals;
  std::vector<device::TokenWindows> windows;
  for (int u : users) {
    const data::UserData& ud = s->dataset.users[u];
    tests.push_back(ud.test);
    size_t n_val = 0;
    if (c.personalize_val_fraction > 0 && ud.train.size() >= 5) {
      n_val = std::max<size_t>(1, static_cast<size_t>(c.personalize_val_fraction * ud.train.size()));
    }
    const std::vector<std::string> fit(ud.train.begin(), ud.train.end() - n_val);
    vals.emplace_back(ud.train.end() - n_val, ud.train.end());
    windows.push_back(RepeatWindows(device::MakeWindows(tok, fit, c.seq_len), c.local_batch));
  }
  // Per user, so that the share of users a step helps or hurts can be counted.
  std::vector<device::TextMetrics>& base_per_user = s->base_per_user[population];
  if (base_per_user.size() != users.size()) base_per_user = PerUser(model, tok, tests);
  if (!base_cache->has_value()) *base_cache = ToMetrics(Sum(base_per_user));
  rec.base = **base_cache;

  adapters::LoraAdapter& work = *s->work;
  FEDLORA_RETURN_IF_ERROR(work.Unflatten(s->global.data(), s->global.size()));
  FEDLORA_RETURN_IF_ERROR(work.Attach(model));
  const std::vector<device::TextMetrics> global_per_user = PerUser(model, tok, tests);
  const std::vector<device::TextMetrics> global_val = PerUser(model, tok, vals);
  work.Detach(model);
  rec.global = ToMetrics(Sum(global_per_user));
  for (size_t k = 0; k < users.size(); ++k) {
    Count(base_per_user[k].next_word_top3(), global_per_user[k].next_word_top3(),
          &rec.global_vs_base_top3);
    Count(base_per_user[k].keystroke_savings(), global_per_user[k].keystroke_savings(),
          &rec.global_vs_base_keystrokes);
  }

  // Personalized: global + a few local steps on the user's own train text.
  if (c.personalize_steps > 0) {
    std::vector<const device::TokenWindows*> wp;
    std::vector<uint64_t> seeds;
    std::vector<size_t> trainable;
    for (size_t i = 0; i < users.size(); ++i) {
      if (windows[i].size() == 0) continue;
      trainable.push_back(i);
      wp.push_back(&windows[i]);
      seeds.push_back(DeriveSeed(c.seed, 0xE0000000ULL + users[i]));
    }
    device::TrainOptions o = s->local;
    o.max_steps = c.personalize_steps;
    FEDLORA_ASSIGN_OR_RETURN(
        CohortResult personal,
        TrainCohort(model, s->lora, s->global, wp, seeds, o, c.train_mode, c.max_group, c.workers,
                    s->freeze_a));
    device::TextMetrics sum;
    std::vector<float> flat(s->global.size());
    for (size_t k = 0; k < users.size(); ++k) {
      auto it = std::find(trainable.begin(), trainable.end(), k);
      for (size_t j = 0; j < flat.size(); ++j) {
        flat[j] = s->global[j] +
                  (it != trainable.end() ? personal.deltas[it - trainable.begin()][j] : 0.0f);
      }
      FEDLORA_RETURN_IF_ERROR(work.Unflatten(flat.data(), flat.size()));
      FEDLORA_RETURN_IF_ERROR(work.Attach(model));
      device::TextMetrics mine = device::EvaluateTexts(model, tok, tests[k]);
      if (!vals[k].empty()) {
        // Keep the personal adapter only if it beats the global one on the user's own
        // held-back lines (what a device can check without any text leaving it).
        const device::TextMetrics v = device::EvaluateTexts(model, tok, vals[k]);
        const device::TextMetrics& g = global_val[k];
        const bool better = v.keystroke_savings() > g.keystroke_savings() ||
                            (v.keystroke_savings() == g.keystroke_savings() &&
                             v.mean_nll() < g.mean_nll());
        if (!better) mine = global_per_user[k];
        rec.personalized_kept += better;
      }
      work.Detach(model);
      sum.Add(mine);
      Count(global_per_user[k].next_word_top3(), mine.next_word_top3(),
            &rec.personalized_vs_global_top3);
      Count(global_per_user[k].keystroke_savings(), mine.keystroke_savings(),
            &rec.personalized_vs_global_keystrokes);
    }
    rec.personalized = ToMetrics(sum);
  } else {
    rec.personalized = rec.global;
    rec.personalized_vs_global_top3.same = rec.users;
    rec.personalized_vs_global_keystrokes.same = rec.users;
  }
  return rec;
}

}  // namespace fedlora::sim
