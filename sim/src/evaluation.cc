// Evaluation of base, global and personalized models on users' test text.
#include <algorithm>
#include <cmath>

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
std::vector<device::TextMetrics> PerUser(const Simulator::State& s,
                                         const std::vector<std::vector<std::string>>& tests) {
  std::vector<device::TextMetrics> out;
  for (const auto& t : tests) {
    out.push_back(device::EvaluateTexts(*s.rt.model, *s.rt.tokenizer, t, s.EvalOpts()));
  }
  return out;
}

device::TextMetrics Sum(const std::vector<device::TextMetrics>& per_user) {
  device::TextMetrics sum;
  for (const auto& m : per_user) sum.Add(m);
  return sum;
}

}  // namespace

namespace {

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(std::ceil(q * v.size())) - 1);
  return v[i];
}

// One method's per-user results as a record against the global adapter.
MethodRecord ToRecord(const std::string& method, const PersonalizeOutput& p,
                      const std::vector<device::TextMetrics>& global_per_user) {
  MethodRecord r;
  r.method = method;
  device::TextMetrics sum;
  for (size_t k = 0; k < p.per_user.size(); ++k) {
    sum.Add(p.per_user[k]);
    r.kept += p.use_personal[k];
    Count(global_per_user[k].next_word_top3(), p.per_user[k].next_word_top3(), &r.vs_global_top3);
    Count(global_per_user[k].keystroke_savings(), p.per_user[k].keystroke_savings(),
          &r.vs_global_keystrokes);
  }
  r.metrics = ToMetrics(sum);
  r.seconds = p.seconds;
  return r;
}

}  // namespace

absl::StatusOr<EvalRecord> Evaluate(Simulator::State* s, const std::string& population,
                                    const std::vector<int>& users,
                                    std::optional<Metrics>* base_cache, bool final_eval) {
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
  PersonalizeInput in;
  in.users = users;
  for (int u : users) {
    const data::UserData& ud = s->dataset.users[u];
    in.tests.push_back(ud.test);
    in.starts.push_back(StartFor(*s, u));
    size_t n_val = 0;
    if (c.personalize_val_fraction > 0 && ud.train.size() >= 5) {
      n_val = std::max<size_t>(1, static_cast<size_t>(c.personalize_val_fraction * ud.train.size()));
    }
    const std::vector<std::string> fit(ud.train.begin(), ud.train.end() - n_val);
    in.vals.emplace_back(ud.train.end() - n_val, ud.train.end());
    in.fits.push_back(fit);
    in.windows.push_back(RepeatWindows(device::MakeWindows(tok, fit, c.seq_len), c.local_batch));
  }
  // Per user, so that the share of users a step helps or hurts can be counted.
  std::vector<device::TextMetrics>& base_per_user = s->base_per_user[population];
  if (base_per_user.size() != users.size()) base_per_user = PerUser(*s, in.tests);
  if (!base_cache->has_value()) *base_cache = ToMetrics(Sum(base_per_user));
  rec.base = **base_cache;

  adapters::LoraAdapter& work = *s->work;
  FEDLORA_RETURN_IF_ERROR(work.Unflatten(s->global.data(), s->global.size()));
  FEDLORA_RETURN_IF_ERROR(work.Attach(model));
  in.global_test = PerUser(*s, in.tests);
  in.global_val = PerUser(*s, in.vals);
  work.Detach(model);
  rec.global = ToMetrics(Sum(in.global_test));
  for (size_t k = 0; k < users.size(); ++k) {
    Count(base_per_user[k].next_word_top3(), in.global_test[k].next_word_top3(),
          &rec.global_vs_base_top3);
    Count(base_per_user[k].keystroke_savings(), in.global_test[k].keystroke_savings(),
          &rec.global_vs_base_keystrokes);
  }

  rec.personalize_method = c.personalize;
  if (c.personalize_steps <= 0) {
    rec.personalize_method = "none";
    rec.personalized = rec.global;
    rec.personalized_vs_global_top3.same = rec.users;
    rec.personalized_vs_global_keystrokes.same = rec.users;
    return rec;
  }
  FEDLORA_ASSIGN_OR_RETURN(PersonalizeOutput chosen,
                           Personalize(s, c.personalize, in, /*time_suggestions=*/final_eval));
  const MethodRecord mine = ToRecord(c.personalize, chosen, in.global_test);
  rec.personalized = mine.metrics;
  rec.personalized_vs_global_top3 = mine.vs_global_top3;
  rec.personalized_vs_global_keystrokes = mine.vs_global_keystrokes;
  rec.personalized_kept = mine.kept;
  rec.suggest_calls = static_cast<int>(chosen.latency_ms.size());
  rec.suggest_p50_ms = Percentile(chosen.latency_ms, 0.5);
  rec.suggest_p95_ms = Percentile(chosen.latency_ms, 0.95);
  if (final_eval && c.personalize_compare) {
    std::vector<std::string> methods = {"finetune", "dual", "ditto", "interpolate"};
    // The lexicon strip's own rows: the personal n-gram on the federated adapter (ngram) and
    // on the base alone (ngram_base: what federation adds under personalization).
    if (c.strip == "lexicon") methods.insert(methods.begin(), {"ngram", "ngram_base"});
    for (const std::string& method : methods) {
      if (method == c.personalize) {
        rec.methods.push_back(mine);
        continue;
      }
      FEDLORA_ASSIGN_OR_RETURN(PersonalizeOutput other, Personalize(s, method, in, false));
      rec.methods.push_back(ToRecord(method, other, in.global_test));
    }
  }
  return rec;
}

std::vector<float> StartFor(const Simulator::State& s, int user) {
  std::vector<float> start = s.global;
  auto it = s.own_b.find(user);
  if (it == s.own_b.end()) return start;
  for (size_t j = 0; j < s.personal_b.size(); ++j) start[s.personal_b[j]] = it->second[j];
  return start;
}

absl::Status EvaluatePopulations(Simulator::State* s, bool last,
                                 std::optional<EvalRecord>* participants,
                                 std::optional<EvalRecord>* heldout) {
  std::vector<int> users;
  for (int d : s->eval_participants) users.push_back(s->devices[d].user);
  FEDLORA_ASSIGN_OR_RETURN(*participants,
                           Evaluate(s, "participants", users, &s->base_participants, last));
  FEDLORA_ASSIGN_OR_RETURN(*heldout,
                           Evaluate(s, "heldout", s->eval_heldout, &s->base_heldout, last));
  return absl::OkStatus();
}

}  // namespace fedlora::sim
