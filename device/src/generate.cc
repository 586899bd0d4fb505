#include "fedlora/device/generate.h"

#include <cmath>

#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "fedlora/common/random.h"
#include "next_piece.h"

namespace fedlora::device {
namespace {

// Samples from logits [V] with top-k and temperature using a seeded engine.
int64_t Sample(const torch::Tensor& logits, const GenerateOptions& o, RandomSource& rng) {
  if (o.temperature <= 0 || o.top_k == 1) return logits.argmax().item<int64_t>();
  torch::Tensor l = logits / o.temperature;
  int64_t k = o.top_k > 0 ? std::min<int64_t>(o.top_k, l.size(0)) : l.size(0);
  auto [vals, idx] = l.topk(k);
  torch::Tensor p = torch::softmax(vals, 0).contiguous();
  const float* pp = p.data_ptr<float>();
  // Inverse-CDF draw from a 53-bit uniform (portable across standard libraries).
  double u = rng.UniformDouble();
  double acc = 0;
  for (int64_t i = 0; i < k; ++i) {
    acc += pp[i];
    if (u < acc) return idx[i].item<int64_t>();
  }
  return idx[k - 1].item<int64_t>();
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(const model::LlamaModel& model,
                                        const model::Tokenizer& tokenizer,
                                        const std::string& prompt, const GenerateOptions& o) {
  if (o.max_new_tokens < 0) return absl::InvalidArgumentError("-n must be >= 0");
  if (o.temperature < 0) return absl::InvalidArgumentError("--temperature must be >= 0");
  if (o.top_k < 0) return absl::InvalidArgumentError("--top-k must be >= 0");
  torch::NoGradGuard no_grad;
  GenerateResult r;
  r.prompt_ids = tokenizer.EncodeWithBos(prompt);
  const int64_t ctx = model.config().max_position_embeddings;
  if (static_cast<int64_t>(r.prompt_ids.size()) >= ctx) {
    r.prompt_ids.erase(r.prompt_ids.begin() + 1, r.prompt_ids.end() - (ctx / 2));
  }
  SplitMix64 rng(o.seed);
  model::KvCache cache;
  model::ForwardOptions fo;
  fo.cache = &cache;
  fo.last_only = true;
  torch::Tensor input = torch::tensor(r.prompt_ids, torch::kInt64).unsqueeze(0);
  for (int i = 0; i < o.max_new_tokens; ++i) {
    if (cache.length() + input.size(1) > ctx) {
      r.stopped_early = "context";
      break;
    }
    torch::Tensor logits = model.Forward(input, fo)[0][0];
    int64_t next = Sample(logits, o, rng);
    if (o.stop_at_eos && next == tokenizer.eos_id()) {
      r.stopped_early = "eos";
      break;
    }
    r.new_ids.push_back(next);
    input = torch::tensor({next}, torch::kInt64).unsqueeze(0);
  }
  // Decode prompt + continuation together and cut the prompt off, so the space sentencepiece
  // drops at the start of a decoded sequence is kept between prompt and continuation.
  std::vector<int64_t> all = r.prompt_ids;
  all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
  std::string full = tokenizer.Decode(all);
  std::string head = tokenizer.Decode(r.prompt_ids);
  r.text = full.compare(0, head.size(), head) == 0 ? full.substr(head.size())
                                                   : tokenizer.Decode(r.new_ids);
  return r;
}

namespace {

// The model's next-token log-probabilities [V] after [BOS] + `prefix`'s tokens (the most
// recent ones that leave max_word_tokens of context free); the prefix's KV cache in *cache,
// reusing and refreshing `state` (SuggestState) when given.
torch::Tensor PrefixLogProbs(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                             const std::string& prefix, int max_word_tokens,
                             SuggestState* state, model::KvCache* cache,
                             std::vector<int64_t>* ids_out = nullptr) {
  std::string p(absl::StripTrailingAsciiWhitespace(prefix));
  std::vector<int64_t> ids = tokenizer.EncodeWithBos(p);
  const int64_t ctx = model.config().max_position_embeddings;
  // Keep BOS and the most recent tokens so the completion fits in the context.
  const int64_t keep = std::max<int64_t>(1, ctx - max_word_tokens - 1);
  if (static_cast<int64_t>(ids.size()) > keep + 1) ids.erase(ids.begin() + 1, ids.end() - keep);
  model::KvCache& prefix_cache = *cache;
  // Tokens whose keys and values the last call left in `state`: the shared prefix, but at
  // least one token runs (its logits are the answer).
  int64_t reuse = 0;
  if (state != nullptr) {
    const size_t n = std::min(state->ids.size(), ids.size() - 1);
    while (reuse < static_cast<int64_t>(n) && state->ids[reuse] == ids[reuse]) ++reuse;
    if (reuse > state->cache.length()) reuse = 0;  // a state from elsewhere: start again
    if (reuse > 0) {
      for (size_t l = 0; l < state->cache.k.size(); ++l) {
        prefix_cache.k.push_back(state->cache.k[l].narrow(2, 0, reuse));
        prefix_cache.v.push_back(state->cache.v[l].narrow(2, 0, reuse));
      }
    }
    state->reused_tokens = reuse;
  }
  model::ForwardOptions fo;
  fo.cache = &prefix_cache;
  fo.last_only = true;
  std::vector<int64_t> fresh(ids.begin() + reuse, ids.end());
  torch::Tensor logp =
      torch::log_softmax(model.Forward(torch::tensor(fresh).unsqueeze(0), fo)[0][0], -1);
  if (state != nullptr) {
    state->ids = ids;
    state->cache = prefix_cache;
  }
  if (ids_out != nullptr) *ids_out = std::move(ids);
  return logp;
}

}  // namespace

absl::StatusOr<std::vector<Suggestion>> SuggestNextWords(const model::LlamaModel& model,
                                                         const model::Tokenizer& tokenizer,
                                                         const std::string& prefix, int k,
                                                         int max_word_tokens,
                                                         SuggestState* state) {
  if (k <= 0) return absl::InvalidArgumentError("-k must be positive");
  torch::NoGradGuard no_grad;
  model::KvCache prefix_cache;
  torch::Tensor logp =
      PrefixLogProbs(model, tokenizer, prefix, max_word_tokens, state, &prefix_cache);
  const int64_t vocab = logp.size(0);
  // Word-starting pieces, gathered on the host first: one tensor write per piece would cost
  // more than the model's forward pass for an 8000-piece vocabulary.
  std::vector<uint8_t> starts(static_cast<size_t>(vocab), 0);
  for (int64_t id = 0; id < std::min<int64_t>(vocab, tokenizer.vocab_size()); ++id) {
    starts[static_cast<size_t>(id)] = tokenizer.StartsWord(id) ? 1 : 0;
  }
  torch::Tensor mask = torch::from_blob(starts.data(), {vocab}, torch::kUInt8).to(torch::kBool);
  const int64_t candidates = std::min<int64_t>(vocab, 4 * static_cast<int64_t>(k));
  auto [vals, firsts] = logp.masked_fill(mask.logical_not(), -INFINITY).topk(candidates);
  std::vector<Suggestion> out;
  // The candidates are completed together, one row each, so that every decoding step reads
  // the weights once for all of them; a batch takes as many as the strip still lacks (a
  // duplicate or empty word makes another batch take the next ones).
  int64_t next = 0;
  while (static_cast<int>(out.size()) < k && next < candidates) {
    std::vector<std::vector<int64_t>> words;
    std::vector<double> lps;
    while (static_cast<int>(words.size() + out.size()) < k && next < candidates) {
      const double v = vals[next].item<double>();
      if (!std::isfinite(v)) {
        next = candidates;
        break;
      }
      words.push_back({firsts[next].item<int64_t>()});
      lps.push_back(v);
      ++next;
    }
    const int64_t b = static_cast<int64_t>(words.size());
    if (b == 0) break;
    model::KvCache cache;  // the prefix's, one copy per row
    for (size_t l = 0; l < prefix_cache.k.size(); ++l) {
      cache.k.push_back(prefix_cache.k[l].expand({b, -1, -1, -1}));
      cache.v.push_back(prefix_cache.v[l].expand({b, -1, -1, -1}));
    }
    model::ForwardOptions step;
    step.cache = &cache;
    step.last_only = true;
    std::vector<bool> done(static_cast<size_t>(b), false);
    for (int t = 1; t < max_word_tokens; ++t) {
      if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
      std::vector<int64_t> last;
      for (const auto& w : words) last.push_back(w.back());
      torch::Tensor l = torch::log_softmax(
          model.Forward(torch::tensor(last).view({b, 1}), step).select(1, 0), -1);
      torch::Tensor best = l.argmax(-1);
      for (int64_t i = 0; i < b; ++i) {
        if (done[i]) continue;
        const int64_t tok = best[i].item<int64_t>();
        if (tokenizer.StartsWord(tok) || tokenizer.IsSpecial(tok)) {
          done[i] = true;
          continue;
        }
        words[i].push_back(tok);
        lps[i] += l[i][tok].item<double>();
      }
    }
    for (int64_t i = 0; i < b && static_cast<int>(out.size()) < k; ++i) {
      std::string text(absl::StripAsciiWhitespace(tokenizer.Decode(words[i])));
      // A bare word-start piece can decode to nothing; duplicates add nothing to the strip.
      bool dup = false;
      for (const auto& s : out) dup = dup || s.word == text;
      if (text.empty() || dup) continue;
      out.push_back({text, lps[i]});
    }
  }
  return out;
}

absl::StatusOr<std::vector<Suggestion>> SuggestLexiconWords(const model::LlamaModel& model,
                                                            const model::Tokenizer& tokenizer,
                                                            const WordStrip& strip,
                                                            const std::string& text, int k,
                                                            SuggestState* state) {
  if (k <= 0) return absl::InvalidArgumentError("-k must be positive");
  torch::NoGradGuard no_grad;
  // The word being typed (after the last space) and the text before it.
  std::string context = text, typed;
  if (!text.empty() && !absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    const size_t cut = text.find_last_of(" \t\n");
    typed = cut == std::string::npos ? text : text.substr(cut + 1);
    context = cut == std::string::npos ? "" : text.substr(0, cut);
  }
  model::KvCache cache;
  std::vector<int64_t> ids;
  torch::Tensor logp =
      PrefixLogProbs(model, tokenizer, context, /*max_word_tokens=*/1, state, &cache, &ids)
          .contiguous();
  std::string h2 = WordNgram::kLineStart, h1 = WordNgram::kLineStart;
  for (const WordSpan& w : WordSpans(ids, strip.vocab())) {
    h2 = std::move(h1);
    h1 = w.text;
  }
  // The first-piece formula, then the model's next step after the first pieces the strip
  // expands for what is typed (word_strip.h), from the context's KV cache.
  StripScores scores;
  strip.Score(h2, h1, logp.data_ptr<float>(), &scores);
  const std::vector<int32_t> pieces = strip.PiecesToExpand(logp.data_ptr<float>(), typed);
  NextPieceRows rows;
  torch::Tensor next;
  if (!pieces.empty()) {
    next = NextPieceLogProbs(model, cache, std::vector<int64_t>(pieces.size(), cache.length() - 1),
                             std::vector<int64_t>(pieces.begin(), pieces.end()));
    for (size_t r = 0; r < pieces.size(); ++r) {
      rows.first.push_back(pieces[r]);
      rows.logp.push_back(next.data_ptr<float>() + r * next.size(1));
    }
  }
  std::vector<float> p;
  strip.Refine(scores, pieces, rows, &p);
  std::vector<Suggestion> out;
  for (auto& [word, prob] : strip.Top(p, typed, k)) out.push_back({word, std::log(prob)});
  return out;
}

}  // namespace fedlora::device
