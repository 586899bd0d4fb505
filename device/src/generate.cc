#include "fedlora/device/generate.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "fedlora/common/random.h"

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

absl::StatusOr<std::vector<Suggestion>> SuggestNextWords(const model::LlamaModel& model,
                                                         const model::Tokenizer& tokenizer,
                                                         const std::string& prefix, int k,
                                                         int max_word_tokens) {
  if (k <= 0) return absl::InvalidArgumentError("-k must be positive");
  torch::NoGradGuard no_grad;
  std::string p(absl::StripTrailingAsciiWhitespace(prefix));
  std::vector<int64_t> ids = tokenizer.EncodeWithBos(p);
  const int64_t ctx = model.config().max_position_embeddings;
  // Keep BOS and the most recent tokens so the completion fits in the context.
  const int64_t keep = std::max<int64_t>(1, ctx - max_word_tokens - 1);
  if (static_cast<int64_t>(ids.size()) > keep + 1) ids.erase(ids.begin() + 1, ids.end() - keep);
  model::KvCache prefix_cache;
  model::ForwardOptions fo;
  fo.cache = &prefix_cache;
  fo.last_only = true;
  torch::Tensor logp =
      torch::log_softmax(model.Forward(torch::tensor(ids).unsqueeze(0), fo)[0][0], -1);
  const int64_t vocab = logp.size(0);
  torch::Tensor mask = torch::zeros({vocab}, torch::kBool);
  for (int64_t id = 0; id < std::min<int64_t>(vocab, tokenizer.vocab_size()); ++id) {
    if (tokenizer.StartsWord(id)) mask[id] = true;
  }
  const int64_t candidates = std::min<int64_t>(vocab, 4 * static_cast<int64_t>(k));
  auto [vals, firsts] = logp.masked_fill(mask.logical_not(), -INFINITY).topk(candidates);
  std::vector<Suggestion> out;
  for (int64_t i = 0; i < candidates && static_cast<int>(out.size()) < k; ++i) {
    if (!std::isfinite(vals[i].item<double>())) break;
    // Continue greedily from a copy of the prefix cache.
    model::KvCache cache = prefix_cache;
    model::ForwardOptions step;
    step.cache = &cache;
    step.last_only = true;
    std::vector<int64_t> word = {firsts[i].item<int64_t>()};
    double lp = vals[i].item<double>();
    for (int t = 1; t < max_word_tokens; ++t) {
      torch::Tensor l = torch::log_softmax(
          model.Forward(torch::tensor({word.back()}).unsqueeze(0), step)[0][0], -1);
      int64_t next = l.argmax().item<int64_t>();
      if (tokenizer.StartsWord(next) || tokenizer.IsSpecial(next)) break;
      word.push_back(next);
      lp += l[next].item<double>();
    }
    std::string text(absl::StripAsciiWhitespace(tokenizer.Decode(word)));
    // A bare word-start piece can decode to nothing; duplicates add nothing to the strip.
    bool dup = false;
    for (const auto& s : out) dup = dup || s.word == text;
    if (text.empty() || dup) continue;
    out.push_back({text, lp});
  }
  return out;
}

}  // namespace fedlora::device
