// Personalization methods of the evaluation (docs/sim.md, "Personalization methods").
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/word_ngram.h"
#include "fedlora/sim/cohort_trainer.h"
#include "sim_state.h"

namespace fedlora::sim {
namespace {

using Clock = std::chrono::steady_clock;

// Keep-if-better on the user's held-back lines: keystroke savings, then loss.
bool Better(const device::TextMetrics& v, const device::TextMetrics& g) {
  return v.keystroke_savings() > g.keystroke_savings() ||
         (v.keystroke_savings() == g.keystroke_savings() && v.mean_nll() < g.mean_nll());
}

// rounds.interpolate_fit = pooled: the one grid point (0..grid) best over every user's
// held-back lines summed; val[user][point].
int PooledBest(const std::vector<std::vector<device::TextMetrics>>& val, size_t n, int grid) {
  std::vector<device::TextMetrics> pooled(grid + 1);
  for (size_t k = 0; k < n; ++k) {
    for (size_t o = 0; o < val[k].size(); ++o) pooled[o].Add(val[k][o]);
  }
  int best = 0;
  for (int o = 1; o <= grid; ++o) {
    if (Better(pooled[o], pooled[best])) best = o;
  }
  return best;
}

std::vector<std::vector<int64_t>> Encode(const model::Tokenizer& tok,
                                         const std::vector<std::string>& texts) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& t : texts) out.push_back(tok.EncodeWithBos(t));
  return out;
}

// Prefixes of the user's test text for the latency measurement: the first half of the words
// of up to 3 lines.
std::vector<std::string> Prefixes(const std::vector<std::string>& test) {
  std::vector<std::string> out;
  for (size_t i = 0; i < test.size() && out.size() < 3; ++i) {
    std::vector<std::string> words = absl::StrSplit(test[i], ' ', absl::SkipEmpty());
    if (words.size() < 2) continue;
    words.resize(words.size() / 2);
    out.push_back(absl::StrJoin(words, " "));
  }
  return out;
}

// Local training of every user from `start` (flat adapter of `lora`); deltas per user, empty
// for users without training windows.
// `start` == nullptr: each user from in.starts.
absl::StatusOr<std::vector<std::vector<float>>> TrainUsers(
    Simulator::State* s, const PersonalizeInput& in, const adapters::LoraConfig& lora,
    const std::vector<float>* start, double prox_mu, bool freeze_a, bool keep_attached) {
  const SimConfig& c = s->config;
  std::vector<const device::TokenWindows*> wp;
  std::vector<uint64_t> seeds;
  std::vector<size_t> trainable;
  std::vector<std::vector<float>> starts;
  for (size_t i = 0; i < in.users.size(); ++i) {
    if (in.windows[i].size() == 0) continue;
    trainable.push_back(i);
    if (start == nullptr) starts.push_back(in.starts[i]);
    wp.push_back(&in.windows[i]);
    seeds.push_back(DeriveSeed(c.seed, 0xE0000000ULL + in.users[i]));
  }
  std::vector<std::vector<float>> deltas(in.users.size());
  if (wp.empty()) return deltas;
  device::TrainOptions o = s->local;
  o.max_steps = c.personalize_steps;
  o.prox_mu = prox_mu;
  FEDLORA_ASSIGN_OR_RETURN(
      CohortResult r,
      TrainCohort(*s->rt.model, lora, start ? *start : s->global, wp, seeds, o, c.train_mode,
                  c.max_group, c.workers, freeze_a, keep_attached, start ? nullptr : &starts));
  for (size_t k = 0; k < trainable.size(); ++k) deltas[trainable[k]] = std::move(r.deltas[k]);
  return deltas;
}

std::vector<float> Plus(const std::vector<float>& a, const std::vector<float>& d) {
  std::vector<float> out = a;
  for (size_t j = 0; j < d.size() && j < out.size(); ++j) out[j] += d[j];
  return out;
}

// dual: the private adapter beside the frozen global one: rank personal_rank with the same
// alpha / r scaling, seeded init (B = 0, so it starts at zero output).
adapters::LoraConfig PrivateConfig(const Simulator::State& s) {
  adapters::LoraConfig mine = s.lora;
  mine.rank = s.config.personal_rank;
  mine.alpha = s.lora.alpha * s.config.personal_rank / s.lora.rank;
  return mine;
}
absl::StatusOr<adapters::LoraAdapter> NewPrivateAdapter(const Simulator::State& s) {
  return adapters::LoraAdapter::Create(s.rt.model->config(), PrivateConfig(s),
                                       DeriveSeed(s.config.seed, 0xD0A1ULL));
}

// Suggestion latency of the model attached now, per prefix of user k's test text, with the
// given lexicon strip (null: the public one, or the greedy strip without a lexicon).
using StripTimer =
    std::function<absl::StatusOr<std::vector<double>>(size_t, const device::WordStrip*)>;

// interpolate: p = w * p_finetuned + (1 - w) * p_global per next token, w from {0, 0.1, ..., 1}
// fitted on the held-back lines: per user by keystroke savings then loss (keystrokes), per user
// by loss (loss), or one w for the whole group by the keystroke savings summed over every
// user's held-back lines (pooled: what a federated evaluation of the 11 weights returns).
// Users too short to hold any lines back get 0.5 (per-user fits). p_finetuned is the dual
// model (global + private adapter) with rounds.interpolate_with = dual.
absl::Status Interpolate(Simulator::State* s, const PersonalizeInput& in,
                         const StripTimer& strip_ms, PersonalizeOutput* out) {
  const SimConfig& c = s->config;
  model::LlamaModel& model = *s->rt.model;
  const model::Tokenizer& tok = *s->rt.tokenizer;
  adapters::LoraAdapter& work = *s->work;
  const size_t n = in.users.size();
  constexpr int kGrid = 10;
  auto attach = [&](const std::vector<float>& flat) -> absl::Status {
    FEDLORA_RETURN_IF_ERROR(work.Unflatten(flat.data(), flat.size()));
    return work.Attach(model);
  };
  // The personal model: the fine-tuned global adapter (finetune), or the frozen global
  // adapter plus a private rank-personal_rank adapter trained on top of it (dual).
  const bool dual = c.interpolate_with == "dual";
  std::optional<adapters::LoraAdapter> personal;
  std::vector<float> personal_start;
  std::vector<std::vector<float>> deltas;
  if (dual) {
    const adapters::LoraConfig mine = PrivateConfig(*s);
    FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter p, NewPrivateAdapter(*s));
    personal.emplace(std::move(p));
    personal_start = personal->Flatten();
    FEDLORA_RETURN_IF_ERROR(attach(s->global));
    auto trained = TrainUsers(s, in, mine, &personal_start, 0.0, false, /*keep_attached=*/true);
    work.Detach(model);
    FEDLORA_ASSIGN_OR_RETURN(deltas, std::move(trained));
  } else {
    FEDLORA_ASSIGN_OR_RETURN(deltas, TrainUsers(s, in, s->lora, nullptr, 0.0, s->freeze_a, false));
  }
  auto attach_personal = [&](size_t k) -> absl::Status {
    if (!dual) return attach(Plus(in.starts[k], deltas[k]));
    FEDLORA_RETURN_IF_ERROR(attach(s->global));
    const std::vector<float> flat = Plus(personal_start, deltas[k]);
    FEDLORA_RETURN_IF_ERROR(personal->Unflatten(flat.data(), flat.size()));
    return personal->Attach(model);
  };
  auto detach_personal = [&] {
    if (dual) personal->Detach(model);
    work.Detach(model);
  };
  // Pass 1: each user's test predictions under both models and held-back metrics per weight.
  std::vector<device::WindowLogProbs> g_test(n), p_test(n);
  std::vector<std::vector<device::TextMetrics>> val(n);  // [user][step], step 0 = global
  std::vector<double> w(n, 0.5);
  for (size_t k = 0; k < n; ++k) {
    const auto test_ids = Encode(tok, in.tests[k]);
    const auto val_ids = Encode(tok, in.vals[k]);
    FEDLORA_RETURN_IF_ERROR(attach(s->global));
    g_test[k] = device::ForwardWindows(model, tok, test_ids);
    const device::WindowLogProbs g_val = device::ForwardWindows(model, tok, val_ids);
    work.Detach(model);
    FEDLORA_RETURN_IF_ERROR(attach_personal(k));
    p_test[k] = device::ForwardWindows(model, tok, test_ids);
    const device::WindowLogProbs p_val = device::ForwardWindows(model, tok, val_ids);
    detach_personal();
    if (val_ids.empty()) continue;
    val[k].push_back(in.global_val[k]);
    for (int step = 1; step <= kGrid; ++step) {
      val[k].push_back(
          device::ScoreMixture(p_val, g_val, step / double(kGrid), tok, s->public_strip.get()));
    }
    w[k] = 0;
    for (int step = 1; step <= kGrid; ++step) {
      const device::TextMetrics& v = val[k][step];
      const device::TextMetrics& best = val[k][static_cast<int>(std::lround(w[k] * kGrid))];
      if (c.interpolate_fit == "loss" ? v.mean_nll() < best.mean_nll() : Better(v, best)) {
        w[k] = step / double(kGrid);
      }
    }
  }
  if (c.interpolate_fit == "pooled") w.assign(n, PooledBest(val, n, kGrid) / double(kGrid));
  // Pass 2: score the test text with each user's weight; time the strip of a mixture, which
  // needs both models' predictions, per prefix.
  for (size_t k = 0; k < n; ++k) {
    out->use_personal[k] = w[k] > 0;
    if (w[k] <= 0) {
      out->per_user[k] = in.global_test[k];
      continue;
    }
    out->per_user[k] = device::ScoreMixture(p_test[k], g_test[k], w[k], tok, s->public_strip.get());
    FEDLORA_RETURN_IF_ERROR(attach_personal(k));
    auto mine = strip_ms(k, nullptr);
    detach_personal();
    FEDLORA_RETURN_IF_ERROR(mine.status());
    FEDLORA_RETURN_IF_ERROR(attach(s->global));
    auto global_ms = strip_ms(k, nullptr);
    work.Detach(model);
    FEDLORA_RETURN_IF_ERROR(global_ms.status());
    for (size_t j = 0; j < global_ms->size(); ++j) {
      out->latency_ms.push_back((*mine)[j] + (*global_ms)[j]);
    }
  }
  return absl::OkStatus();
}

// ngram: the lexicon strip with the user's own words and word n-gram (counted on the train
// lines left to fit on, capped at rounds.personal_ngram_bytes) mixed in at weight l, l from
// {0, 0.1, ..., 0.9}, or no personal state at all (the public strip: option 0), chosen on the
// held-back lines as interpolate's weight is (per user by keystrokes then loss, or pooled).
// The held-back lines also choose whether the model's second piece ranks words (K =
// rounds.strip_second_pieces) or not (K = 0; word_strip.h): a base whose next step knows a
// word's ending less well than the counts do (Shakespeare's) would lose keystrokes with it.
// The language model is the federated adapter (`federated`) or the base alone (ngram_base,
// the ablation). No training. rounds.learn_typed: the personal counts also learn each held-back
// and test line once it has been typed (device::ScoreStripLearning, a phone's observe), and the
// test starts from every train line (the fits and the held-back ones).
absl::Status PersonalNgram(Simulator::State* s, const PersonalizeInput& in, bool federated,
                           const StripTimer& strip_ms, PersonalizeOutput* out) {
  const SimConfig& c = s->config;
  model::LlamaModel& model = *s->rt.model;
  const model::Tokenizer& tok = *s->rt.tokenizer;
  adapters::LoraAdapter& work = *s->work;
  const size_t n = in.users.size();
  constexpr int kGrid = 10;
  const device::KeyboardVocab& kv = s->lexicon->kv;
  std::vector<std::unique_ptr<device::WordStrip>> strips(n);
  std::vector<device::WindowLogProbs> test(n);
  std::vector<std::vector<device::TextMetrics>> val(n);  // [user][option]
  // Option i * (1 + kGrid) + j: second pieces ks[i]; j = 0: no personal state (the public
  // strip), j = 1 + step: the personal strip at l = step / kGrid.
  device::StripWeights weights = s->public_strip->weights();
  std::vector<int> ks = {weights.second_pieces};
  if (weights.second_pieces > 0) ks.push_back(0);
  const int per_k = 1 + kGrid;
  std::vector<std::unique_ptr<device::WordStrip>> publics;  // per K
  for (int k2 : ks) {
    device::StripWeights w = weights;
    w.second_pieces = k2;
    publics.push_back(std::make_unique<device::WordStrip>(s->lexicon, nullptr, w));
  }
  std::vector<int> choice(n, 0);
  device::EvalOptions eo;  // the second pieces the public strip expands (word_strip.h)
  eo.strip = s->public_strip.get();
  if (federated) {
    FEDLORA_RETURN_IF_ERROR(work.Unflatten(s->global.data(), s->global.size()));
    FEDLORA_RETURN_IF_ERROR(work.Attach(model));
  }
  const bool online = c.learn_typed;
  std::vector<device::WordNgram> all(online ? n : 0);  // learn_typed: every train line
  for (size_t k = 0; k < n; ++k) {
    device::WordNgram mine;
    mine.AddLines(tok, kv, in.fits[k]);
    if (online) {
      all[k] = mine;
      all[k].AddLines(tok, kv, in.vals[k]);
      all[k].Prune(static_cast<size_t>(c.personal_ngram_bytes));
    }
    mine.Prune(static_cast<size_t>(c.personal_ngram_bytes));
    strips[k] = std::make_unique<device::WordStrip>(s->lexicon, &mine, weights);
    test[k] = device::ForwardWindows(model, tok, Encode(tok, in.tests[k]), eo);
    if (in.vals[k].empty()) {
      choice[k] = 1 + kGrid / 2;  // nothing held back: an even mixture
      continue;
    }
    const device::WindowLogProbs v =
        device::ForwardWindows(model, tok, Encode(tok, in.vals[k]), eo);
    for (size_t i = 0; i < ks.size(); ++i) {
      val[k].push_back(device::ScoreStrip(v, tok, *publics[i]));
      weights.second_pieces = ks[i];
      if (online) {
        std::vector<device::StripWeights> opts;
        for (int step = 0; step < kGrid; ++step) {
          weights.personal = step / double(kGrid);
          opts.push_back(weights);
        }
        const auto got = device::ScoreStripLearning(v, tok, s->lexicon, mine, in.vals[k], opts,
                                                    c.personal_ngram_bytes);
        val[k].insert(val[k].end(), got.begin(), got.end());
        continue;
      }
      for (int step = 0; step < kGrid; ++step) {
        weights.personal = step / double(kGrid);
        strips[k]->set_weights(weights);
        val[k].push_back(device::ScoreStrip(v, tok, *strips[k]));
      }
    }
    for (size_t o = 1; o < val[k].size(); ++o) {
      if (Better(val[k][o], val[k][choice[k]])) choice[k] = static_cast<int>(o);
    }
  }
  if (c.interpolate_fit == "pooled") {
    choice.assign(n, PooledBest(val, n, static_cast<int>(ks.size()) * per_k - 1));
  }
  absl::Status st;
  for (size_t k = 0; k < n && st.ok(); ++k) {
    const int i = choice[k] / per_k, j = choice[k] % per_k;
    out->use_personal[k] = j > 0;
    if (j == 0) {
      out->per_user[k] = device::ScoreStrip(test[k], tok, *publics[i]);
      continue;
    }
    weights.second_pieces = ks[i];
    weights.personal = (j - 1) / double(kGrid);
    strips[k]->set_weights(weights);
    if (online) {
      out->per_user[k] = device::ScoreStripLearning(test[k], tok, s->lexicon, all[k], in.tests[k],
                                                    {weights}, c.personal_ngram_bytes)[0];
    } else {
      out->per_user[k] = device::ScoreStrip(test[k], tok, *strips[k]);
    }
    auto ms = strip_ms(k, strips[k].get());
    st = ms.status();
    if (st.ok()) out->latency_ms.insert(out->latency_ms.end(), ms->begin(), ms->end());
  }
  if (federated) work.Detach(model);
  return st;
}

}  // namespace

absl::StatusOr<PersonalizeOutput> Personalize(Simulator::State* s, const std::string& method,
                                              const PersonalizeInput& in, bool time_suggestions) {
  const SimConfig& c = s->config;
  const auto t0 = Clock::now();
  model::LlamaModel& model = *s->rt.model;
  const model::Tokenizer& tok = *s->rt.tokenizer;
  adapters::LoraAdapter& work = *s->work;
  const size_t n = in.users.size();
  PersonalizeOutput out;
  out.per_user.resize(n);
  out.use_personal.assign(n, false);
  StripTimer strip_ms =
      [&](size_t k, const device::WordStrip* lexicon) -> absl::StatusOr<std::vector<double>> {
    std::vector<double> ms;
    if (!time_suggestions) return ms;
    if (lexicon == nullptr) lexicon = s->public_strip.get();
    for (const std::string& p : Prefixes(in.tests[k])) {
      const auto a = Clock::now();
      FEDLORA_ASSIGN_OR_RETURN(auto strip,
                               lexicon ? device::SuggestLexiconWords(model, tok, *lexicon, p, 3)
                                       : device::SuggestNextWords(model, tok, p, 3));
      (void)strip;
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
    }
    return ms;
  };
  auto time_strip = [&](size_t k) -> absl::Status {
    FEDLORA_ASSIGN_OR_RETURN(std::vector<double> ms, strip_ms(k, nullptr));
    out.latency_ms.insert(out.latency_ms.end(), ms.begin(), ms.end());
    return absl::OkStatus();
  };
  // With user k's personal model attached: its test metrics when it beats the global adapter
  // on the user's held-back lines (then its strip is timed), else the global adapter's.
  auto keep_if_better = [&](size_t k) -> absl::Status {
    const device::EvalOptions eo = s->EvalOpts();
    const bool keep = in.vals[k].empty() ||
                      Better(device::EvaluateTexts(model, tok, in.vals[k], eo), in.global_val[k]);
    out.use_personal[k] = keep;
    out.per_user[k] = keep ? device::EvaluateTexts(model, tok, in.tests[k], eo) : in.global_test[k];
    return keep ? time_strip(k) : absl::OkStatus();
  };

  if (method == "finetune" || method == "ditto") {
    FEDLORA_ASSIGN_OR_RETURN(
        auto deltas, TrainUsers(s, in, s->lora, nullptr, method == "ditto" ? c.ditto_mu : 0.0,
                                s->freeze_a, false));
    for (size_t k = 0; k < n; ++k) {
      const std::vector<float> flat = Plus(in.starts[k], deltas[k]);
      FEDLORA_RETURN_IF_ERROR(work.Unflatten(flat.data(), flat.size()));
      FEDLORA_RETURN_IF_ERROR(work.Attach(model));
      const absl::Status st = keep_if_better(k);
      work.Detach(model);
      FEDLORA_RETURN_IF_ERROR(st);
    }
  } else if (method == "dual") {
    // The global adapter stays attached and frozen; a private adapter of rank personal_rank
    // (same alpha / r scaling) starts at zero output on top of it and trains alone.
    const adapters::LoraConfig mine = PrivateConfig(*s);
    FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter personal, NewPrivateAdapter(*s));
    const std::vector<float> start = personal.Flatten();
    FEDLORA_RETURN_IF_ERROR(work.Unflatten(s->global.data(), s->global.size()));
    FEDLORA_RETURN_IF_ERROR(work.Attach(model));
    auto deltas = TrainUsers(s, in, mine, &start, 0.0, false, /*keep_attached=*/true);
    absl::Status st = deltas.status();
    for (size_t k = 0; k < n && st.ok(); ++k) {
      const std::vector<float> flat = Plus(start, (*deltas)[k]);
      st = personal.Unflatten(flat.data(), flat.size());
      if (st.ok()) st = personal.Attach(model);
      if (!st.ok()) break;
      st = keep_if_better(k);
      personal.Detach(model);
    }
    work.Detach(model);
    FEDLORA_RETURN_IF_ERROR(st);
  } else if (method == "interpolate") {
    FEDLORA_RETURN_IF_ERROR(Interpolate(s, in, strip_ms, &out));
  } else if ((method == "ngram" || method == "ngram_base") && s->lexicon != nullptr) {
    FEDLORA_RETURN_IF_ERROR(PersonalNgram(s, in, method == "ngram", strip_ms, &out));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "rounds.personalize: unknown method '", method,
        "' (hint: ngram with rounds.strip = lexicon, finetune, dual, ditto or interpolate)"));
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

}  // namespace fedlora::sim
