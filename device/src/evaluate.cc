#include "fedlora/device/evaluate.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <functional>

#include "fedlora/device/keystrokes.h"
#include "fedlora/device/word_strip.h"
#include "next_piece.h"

namespace fedlora::device {
namespace {

// Splits a sequence into windows of at most `w` tokens overlapping by one token.
std::vector<std::vector<int64_t>> Windows(const std::vector<int64_t>& ids, int64_t w) {
  std::vector<std::vector<int64_t>> out;
  if (ids.size() < 2) return out;
  const size_t step = static_cast<size_t>(std::max<int64_t>(w - 1, 1));
  for (size_t start = 0; start + 1 < ids.size(); start += step) {
    size_t end = std::min(ids.size(), start + static_cast<size_t>(w));
    out.emplace_back(ids.begin() + start, ids.begin() + end);
    if (end == ids.size()) break;
  }
  return out;
}

// The word that starts at ids[i + 1]: its end j (ids[i+1..j-1]; j == ids.size() when it runs
// past the window) and, when `text` is given, its characters.
int64_t WordEnd(const std::vector<int64_t>& ids, int64_t i, const model::Tokenizer& tok,
                const KeyboardVocab& kv, std::string* text) {
  const int64_t t = static_cast<int64_t>(ids.size());
  int64_t j = i + 2;
  while (j < t && !tok.StartsWord(ids[j]) && !tok.IsSpecial(ids[j])) ++j;
  if (text != nullptr) {
    text->clear();
    for (int64_t k = i + 1; k < j; ++k) *text += kv.text[ids[k]];
  }
  return j;
}

// The characters typed before each keystroke of `word`: "", its first code point, ...
std::vector<std::string> TypedPrefixes(const std::string& word) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < word.size();) {
    out.push_back(word.substr(0, pos));
    ++pos;
    while (pos < word.size() && (static_cast<unsigned char>(word[pos]) & 0xC0) == 0x80) ++pos;
  }
  return out;
}

// The second pieces of one window (row r of a batch whose keys and values are in `cache`).
WindowNextPieces NextPieces(const model::LlamaModel& model, const model::KvCache& cache, int64_t r,
                            const std::vector<int64_t>& ids, const torch::Tensor& logp,
                            const model::Tokenizer& tok, const KeyboardVocab& kv,
                            const WordStrip& strip) {
  const int64_t t = static_cast<int64_t>(ids.size());
  WindowNextPieces out;
  out.offset.assign(static_cast<size_t>(t) + 1, 0);
  std::vector<int64_t> positions, pieces;
  std::string text;
  for (int64_t i = 0; i + 1 < t; ++i) {
    out.offset[i] = static_cast<int64_t>(pieces.size());
    if (!tok.StartsWord(ids[i + 1]) || WordEnd(ids, i, tok, kv, &text) >= t) continue;
    const float* row = logp.data_ptr<float>() + i * logp.size(1);
    std::vector<int32_t> mine;
    for (const std::string& typed : TypedPrefixes(text)) {
      for (int32_t f : strip.PiecesToExpand(row, typed)) {
        if (std::find(mine.begin(), mine.end(), f) == mine.end()) mine.push_back(f);
      }
    }
    for (int32_t f : mine) {
      positions.push_back(i);
      pieces.push_back(f);
      out.piece.push_back(f);
    }
  }
  for (int64_t i = std::max<int64_t>(t - 1, 0); i <= t; ++i)
    out.offset[i] = static_cast<int64_t>(pieces.size());
  if (pieces.empty()) return out;
  model::KvCache one;
  for (size_t l = 0; l < cache.k.size(); ++l) {
    one.k.push_back(cache.k[l].narrow(0, r, 1));
    one.v.push_back(cache.v[l].narrow(0, r, 1));
  }
  out.logp = NextPieceLogProbs(model, one, positions, pieces);
  return out;
}

// Scores one window given its logits [T, V] (CPU float) and, for the lexicon strip's second
// pieces, `next` (may be null).
void ScoreWindow(const std::vector<int64_t>& ids, const torch::Tensor& logits,
                 const torch::Tensor& word_start_mask, const model::Tokenizer& tok,
                 const KeyboardVocab& kv, const WordStrip* strip, const WindowNextPieces* next,
                 TextMetrics* m) {
  const int64_t t = static_cast<int64_t>(ids.size());
  torch::Tensor logp = torch::log_softmax(logits.narrow(0, 0, t), -1).contiguous();
  const int64_t vocab = std::min<int64_t>(logp.size(1), static_cast<int64_t>(kv.text.size()));
  torch::Tensor top3 = std::get<1>(logp.topk(3, -1));  // [T, 3]
  torch::Tensor argmax = top3.select(1, 0).contiguous();
  // Most likely word-starting tokens (the suggestion strip's first tokens).
  torch::Tensor masked = logp.masked_fill(word_start_mask.logical_not(), -INFINITY);
  torch::Tensor word_top3 = std::get<1>(masked.topk(3, -1)).contiguous();
  auto lp = logp.accessor<float, 2>();
  auto t3 = top3.accessor<int64_t, 2>();
  auto am = argmax.accessor<int64_t, 1>();
  auto wt = word_top3.accessor<int64_t, 2>();
  auto ends_word = [&](int64_t id) { return tok.StartsWord(id) || tok.IsSpecial(id); };
  // The lexicon strip's history: the two words before the one predicted (window start = line
  // start).
  std::string h2 = WordNgram::kLineStart, h1 = WordNgram::kLineStart;
  StripScores scores;
  NextPieceRows next_rows;
  for (int64_t i = 0; i + 1 < t; ++i) {
    const int64_t target = ids[i + 1];
    m->tokens += 1;
    m->nll_sum += -lp[i][target];
    m->top1 += t3[i][0] == target;
    m->top3 += (t3[i][0] == target || t3[i][1] == target || t3[i][2] == target);
    if (!tok.StartsWord(target)) continue;
    // The word is ids[i+1 .. j-1]; it is complete only if position j exists in the window.
    std::string text;
    const int64_t j = WordEnd(ids, i, tok, kv, strip != nullptr ? &text : nullptr);
    if (j >= t) continue;  // word runs past the window: not scored
    m->words += 1;
    if (strip != nullptr) {
      const float* row = logp.data_ptr<float>() + i * logp.size(1);
      strip->Score(h2, h1, row, &scores);
      next_rows.first.clear();
      next_rows.logp.clear();
      if (next != nullptr && next->logp.defined()) {
        for (int64_t r = next->offset[i]; r < next->offset[i + 1]; ++r) {
          next_rows.first.push_back(next->piece[r]);
          next_rows.logp.push_back(next->logp.data_ptr<float>() + r * next->logp.size(1));
        }
      }
      bool shown = false;
      const WordKeystrokes ks =
          strip->Keystrokes(scores, next != nullptr ? row : nullptr, &next_rows, text, &shown);
      m->key_chars += ks.chars;
      m->key_saved += ks.saved;
      m->word_top3 += shown;
      h2 = std::move(h1);
      h1 = std::move(text);
      continue;
    }
    {
      const std::vector<int64_t> word(ids.begin() + i + 1, ids.begin() + j);
      std::vector<const float*> rows;
      std::vector<int64_t> greedy;
      for (int64_t k = i; k < j; ++k) {
        rows.push_back(logp.data_ptr<float>() + k * logp.size(1));
        greedy.push_back(am[k]);
      }
      rows.pop_back();  // row j-1 predicts what follows the word: only its argmax is used
      const WordKeystrokes ks = WordKeystrokeSavings(word, rows.data(), vocab, greedy, kv);
      m->key_chars += ks.chars;
      m->key_saved += ks.saved;
    }
    bool first_in_strip = wt[i][0] == target || wt[i][1] == target || wt[i][2] == target;
    if (!first_in_strip) continue;
    // Greedy completion from the true first token must reproduce the word and then stop.
    bool greedy_matches = true;
    for (int64_t k = i + 1; k + 1 < j && greedy_matches; ++k) greedy_matches = am[k] == ids[k + 1];
    if (greedy_matches && ends_word(am[j - 1])) m->word_top3 += 1;
  }
}

}  // namespace

void TextMetrics::Add(const TextMetrics& o) {
  tokens += o.tokens;
  nll_sum += o.nll_sum;
  top1 += o.top1;
  top3 += o.top3;
  words += o.words;
  word_top3 += o.word_top3;
  key_chars += o.key_chars;
  key_saved += o.key_saved;
}

double TextMetrics::perplexity() const { return std::exp(mean_nll()); }

nlohmann::json TextMetrics::ToJson() const {
  return {{"tokens", tokens},
          {"nll", mean_nll()},
          {"perplexity", perplexity()},
          {"next_token_top1", next_token_top1()},
          {"next_token_top3", next_token_top3()},
          {"words", words},
          {"next_word_top3", next_word_top3()},
          {"keystroke_savings", keystroke_savings()}};
}

namespace {

torch::Tensor WordStartMask(const model::Tokenizer& tokenizer, int64_t vocab) {
  torch::Tensor word_start = torch::zeros({vocab}, torch::kBool);
  for (int64_t id = 0; id < std::min<int64_t>(vocab, tokenizer.vocab_size()); ++id) {
    if (tokenizer.StartsWord(id)) word_start[id] = true;
  }
  return word_start;
}

// Runs `model` over the windows of `sequences` in batches; `each(window, logits [T', V],
// its second pieces or null)`. The second pieces are run when options.strip expands any.
using WindowFn =
    std::function<void(const std::vector<int64_t>&, const torch::Tensor&, const WindowNextPieces*)>;
void ForEachWindow(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                   const std::vector<std::vector<int64_t>>& sequences, const EvalOptions& options,
                   const WindowFn& each) {
  const bool second = options.strip != nullptr && options.strip->weights().second_pieces > 0;
  const KeyboardVocab kv = second ? KeyboardVocab::FromTokenizer(tokenizer) : KeyboardVocab();
  torch::NoGradGuard no_grad;
  const int64_t w = options.window > 0 ? options.window : model.config().max_position_embeddings;
  std::vector<std::vector<int64_t>> windows;
  for (const auto& seq : sequences) {
    for (auto& win : Windows(seq, w)) windows.push_back(std::move(win));
  }
  const size_t bs = static_cast<size_t>(std::max<int64_t>(options.batch_size, 1));
  for (size_t b = 0; b < windows.size(); b += bs) {
    size_t e = std::min(windows.size(), b + bs);
    int64_t len = 0;
    for (size_t i = b; i < e; ++i) len = std::max<int64_t>(len, windows[i].size());
    const int64_t n = static_cast<int64_t>(e - b);
    torch::Tensor ids = torch::zeros({n, len}, torch::kInt64);
    torch::Tensor mask = torch::zeros({n, len}, torch::kInt64);
    for (int64_t r = 0; r < n; ++r) {
      const auto& win = windows[b + r];
      int64_t l = static_cast<int64_t>(win.size());
      ids[r].narrow(0, 0, l).copy_(torch::tensor(win, torch::kInt64));
      mask[r].narrow(0, 0, l).fill_(1);
    }
    model::ForwardOptions fo;
    fo.attention_mask = mask;
    model::KvCache cache;
    if (second) fo.cache = &cache;
    torch::Tensor logits = model.Forward(ids, fo);
    for (int64_t r = 0; r < n; ++r) {
      if (!second) {
        each(windows[b + r], logits[r], nullptr);
        continue;
      }
      const std::vector<int64_t>& win = windows[b + r];
      const int64_t t = static_cast<int64_t>(win.size());
      torch::Tensor logp = torch::log_softmax(logits[r].narrow(0, 0, t), -1).contiguous();
      const WindowNextPieces next =
          NextPieces(model, cache, r, win, logp, tokenizer, kv, *options.strip);
      each(win, logits[r], &next);
    }
  }
}

}  // namespace

TextMetrics EvaluateIds(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                        const std::vector<std::vector<int64_t>>& sequences,
                        const EvalOptions& options) {
  const torch::Tensor word_start = WordStartMask(tokenizer, model.config().vocab_size);
  const KeyboardVocab kv = KeyboardVocab::FromTokenizer(tokenizer);
  TextMetrics m;
  ForEachWindow(model, tokenizer, sequences, options,
                [&](const std::vector<int64_t>& win, const torch::Tensor& logits,
                    const WindowNextPieces* next) {
                  ScoreWindow(win, logits, word_start, tokenizer, kv, options.strip, next, &m);
                });
  return m;
}

WindowLogProbs ForwardWindows(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                              const std::vector<std::vector<int64_t>>& sequences,
                              const EvalOptions& options) {
  WindowLogProbs out;
  {
    const int64_t w = options.window > 0 ? options.window : model.config().max_position_embeddings;
    size_t at = 0;
    for (const auto& seq : sequences) {
      out.sequence_start.push_back(at);
      at += Windows(seq, w).size();
    }
    out.sequence_start.push_back(at);
  }
  ForEachWindow(model, tokenizer, sequences, options,
                [&](const std::vector<int64_t>& win, const torch::Tensor& logits,
                    const WindowNextPieces* next) {
                  const int64_t t = static_cast<int64_t>(win.size());
                  out.windows.push_back(win);
                  out.logp.push_back(torch::log_softmax(logits.narrow(0, 0, t), -1).contiguous());
                  if (next != nullptr) out.next.push_back(*next);
                });
  return out;
}

WindowLogProbs WindowLogProbs::Lines(size_t begin, size_t end) const {
  TORCH_CHECK(begin <= end && end + 1 <= sequence_start.size(),
              "WindowLogProbs::Lines: out of range");
  WindowLogProbs out;
  const size_t b = sequence_start[begin], e = sequence_start[end];
  out.windows.assign(windows.begin() + b, windows.begin() + e);
  out.logp.assign(logp.begin() + b, logp.begin() + e);
  if (!next.empty()) out.next.assign(next.begin() + b, next.begin() + e);
  for (size_t i = begin; i <= end; ++i) out.sequence_start.push_back(sequence_start[i] - b);
  return out;
}

TextMetrics ScoreMixture(const WindowLogProbs& a, const WindowLogProbs& b, double w,
                         const model::Tokenizer& tokenizer, const WordStrip* strip) {
  TORCH_CHECK(a.windows == b.windows, "ScoreMixture: predictions of different windows");
  TextMetrics m;
  if (a.logp.empty()) return m;
  const torch::Tensor word_start = WordStartMask(tokenizer, a.logp[0].size(1));
  const KeyboardVocab kv = KeyboardVocab::FromTokenizer(tokenizer);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < a.windows.size(); ++i) {
    torch::Tensor mixed;
    if (w >= 1) {
      mixed = a.logp[i];
    } else if (w <= 0) {
      mixed = b.logp[i];
    } else {
      // log(w e^a + (1-w) e^b), stable; already normalized, so ScoreWindow's log_softmax
      // leaves it unchanged.
      mixed = torch::logaddexp(a.logp[i] + std::log(w), b.logp[i] + std::log1p(-w));
    }
    ScoreWindow(a.windows[i], mixed, word_start, tokenizer, kv, strip, nullptr, &m);
  }
  return m;
}

TextMetrics ScoreStrip(const WindowLogProbs& a, const model::Tokenizer& tokenizer,
                       const WordStrip& strip) {
  TextMetrics m;
  if (a.logp.empty()) return m;
  const torch::Tensor word_start = WordStartMask(tokenizer, a.logp[0].size(1));
  const KeyboardVocab kv = KeyboardVocab::FromTokenizer(tokenizer);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < a.windows.size(); ++i) {
    ScoreWindow(a.windows[i], a.logp[i], word_start, tokenizer, kv, &strip,
                a.next.empty() ? nullptr : &a.next[i], &m);
  }
  return m;
}

TextMetrics EvaluateTexts(const model::LlamaModel& model, const model::Tokenizer& tokenizer,
                          const std::vector<std::string>& texts, const EvalOptions& options) {
  std::vector<std::vector<int64_t>> seqs;
  seqs.reserve(texts.size());
  for (const auto& t : texts) seqs.push_back(tokenizer.EncodeWithBos(t));
  return EvaluateIds(model, tokenizer, seqs, options);
}

std::vector<TextMetrics> ScoreStripLearning(const WindowLogProbs& a,
                                            const model::Tokenizer& tokenizer,
                                            std::shared_ptr<const PublicLexicon> lexicon,
                                            WordNgram counts, const std::vector<std::string>& lines,
                                            const std::vector<StripWeights>& weights,
                                            size_t max_bytes) {
  TORCH_CHECK(!weights.empty(), "ScoreStripLearning: no weights");
  TORCH_CHECK(a.sequence_start.size() == lines.size() + 1,
              "ScoreStripLearning: the windows are not of these lines");
  std::vector<TextMetrics> out(weights.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    WordStrip strip(lexicon, &counts, weights[0]);
    const WindowLogProbs line = a.Lines(i, i + 1);
    for (size_t j = 0; j < weights.size(); ++j) {
      strip.set_weights(weights[j]);
      out[j].Add(ScoreStrip(line, tokenizer, strip));
    }
    counts.AddLines(tokenizer, lexicon->kv, {lines[i]});
    counts.Prune(max_bytes);
  }
  return out;
}

}  // namespace fedlora::device
