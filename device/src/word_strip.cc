#include "fedlora/device/word_strip.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace fedlora::device {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

using IndexOf = std::function<int32_t(const std::string&)>;  // -1: not in the lexicon

void CompileFollowers(const WordNgram::Followers& f, const IndexOf& index,
                      std::unordered_map<std::string, CompiledNgram::Ctx>* out) {
  for (const auto& [ctx, words] : f) {
    CompiledNgram::Ctx c;
    double total = 0;
    for (const auto& [w, n] : words) {
      total += static_cast<double>(n);
      const int32_t i = index(w);
      if (i >= 0) c.items.emplace_back(i, static_cast<float>(n));
    }
    const double distinct = static_cast<double>(words.size());
    c.keep = static_cast<float>(distinct / (total + distinct));
    c.inv = static_cast<float>(1.0 / (total + distinct));
    std::sort(c.items.begin(), c.items.end());
    (*out)[ctx] = std::move(c);
  }
}

CompiledNgram Compile(const WordNgram& g, const IndexOf& index) {
  CompiledNgram c;
  for (const auto& [w, u] : g.unigrams()) {
    c.total += static_cast<double>(u.count);
    c.distinct += 1;
    const int32_t i = index(w);
    if (i >= 0) c.uni.emplace_back(i, static_cast<float>(u.count));
  }
  std::sort(c.uni.begin(), c.uni.end());
  CompileFollowers(g.bigrams(), index, &c.bi);
  CompileFollowers(g.trigrams(), index, &c.tri);
  return c;
}

// Witten-Bell unigram over a lexicon of v words: (c(w) + T / v) / (N + T).
std::vector<float> DenseUnigram(const CompiledNgram& g, size_t v) {
  const double denom = g.total + g.distinct;
  if (denom <= 0 || v == 0) return std::vector<float>(v, v ? 1.0f / v : 0.0f);
  std::vector<float> p(v, static_cast<float>(g.distinct / v / denom));
  for (const auto& [i, n] : g.uni) p[i] += static_cast<float>(n / denom);
  return p;
}

int64_t CodePoints(const std::string& s) {
  int64_t n = 0;
  for (char ch : s) n += !IsContinuationByte(ch);
  return n;
}

}  // namespace

PublicLexicon::PublicLexicon(const WordNgram& pub, const KeyboardVocab& vocab) : kv(vocab) {
  for (const auto& [w, u] : pub.unigrams()) {
    if (u.first_piece >= 0 && u.first_piece < static_cast<int64_t>(kv.text.size())) {
      words.push_back(w);
    }
  }
  std::sort(words.begin(), words.end());  // an order that does not depend on hashing
  for (size_t i = 0; i < words.size(); ++i) {
    index[words[i]] = static_cast<int32_t>(i);
    first_piece.push_back(static_cast<int32_t>(pub.unigrams().at(words[i]).first_piece));
  }
  ngram = Compile(pub, [this](const std::string& w) {
    auto it = index.find(w);
    return it == index.end() ? -1 : it->second;
  });
}

WordStrip::WordStrip(std::shared_ptr<const PublicLexicon> pub, const WordNgram* personal,
                     StripWeights weights)
    : pub_(std::move(pub)), weights_(weights) {
  words_ = pub_->words;
  first_piece_ = pub_->first_piece;
  const int64_t vocab = static_cast<int64_t>(pub_->kv.text.size());
  if (personal != nullptr) {
    has_personal_ = true;
    std::vector<std::string> extra;
    for (const auto& [w, u] : personal->unigrams()) {
      if (!pub_->index.count(w) && u.first_piece >= 0 && u.first_piece < vocab) extra.push_back(w);
    }
    std::sort(extra.begin(), extra.end());
    for (const auto& w : extra) {
      extra_index_[w] = static_cast<int32_t>(words_.size());
      words_.push_back(w);
      first_piece_.push_back(static_cast<int32_t>(personal->unigrams().at(w).first_piece));
    }
    personal_ = Compile(*personal, [this](const std::string& w) {
      auto it = pub_->index.find(w);
      if (it != pub_->index.end()) return it->second;
      auto e = extra_index_.find(w);
      return e == extra_index_.end() ? -1 : e->second;
    });
    me_uni_ = DenseUnigram(personal_, words_.size());
  } else {
    weights_.personal = 0;
  }
  pub_uni_ = DenseUnigram(pub_->ngram, words_.size());
  starts_word_.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    starts_word_[i] = pub_->kv.starts_word[i] && !pub_->kv.special[i];
  }
}

void WordStrip::Ngram(const CompiledNgram& g, const std::vector<float>& uni,
                      const std::string& h2, const std::string& h1,
                      std::vector<float>* out) const {
  *out = uni;
  auto apply = [&](const std::unordered_map<std::string, CompiledNgram::Ctx>& m,
                   const std::string& key) {
    auto it = m.find(key);
    if (it == m.end()) return;
    const CompiledNgram::Ctx& c = it->second;
    for (float& x : *out) x *= c.keep;
    for (const auto& [i, n] : c.items) (*out)[i] += n * c.inv;
  };
  apply(g.bi, h1);
  apply(g.tri, WordNgram::Context(h2, h1));
}

void WordStrip::Distribution(const std::string& h2, const std::string& h1, const float* logp,
                             std::vector<float>* p) const {
  const size_t v = words_.size();
  std::vector<float> pub, me;
  Ngram(pub_->ngram, pub_uni_, h2, h1, &pub);
  const bool personal = has_personal_;
  if (personal) Ngram(personal_, me_uni_, h2, h1, &me);
  // C(w | first piece): the completion counts, normalized per first piece.
  const double cp = personal ? weights_.completion_personal : 0.0;
  std::vector<float> comp(v);
  for (size_t i = 0; i < v; ++i) comp[i] = static_cast<float>((1 - cp) * pub[i] + (personal ? cp * me[i] : 0.0));
  std::vector<double> z(starts_word_.size(), 0.0);
  for (size_t i = 0; i < v; ++i) z[first_piece_[i]] += comp[i];
  // The language model's first piece, renormalized over word-starting pieces (a word starts).
  double mx = -INFINITY;
  for (size_t t = 0; t < starts_word_.size(); ++t) {
    if (starts_word_[t]) mx = std::max<double>(mx, logp[t]);
  }
  double lse = 0;
  for (size_t t = 0; t < starts_word_.size(); ++t) {
    if (starts_word_[t]) lse += std::exp(logp[t] - mx);
  }
  const double log_norm = mx + std::log(lse);
  const double l = personal ? weights_.personal : 0.0;
  const double m = weights_.public_ngram;
  p->resize(v);
  for (size_t i = 0; i < v; ++i) {
    const int32_t f = first_piece_[i];
    const double lm = z[f] > 0 ? std::exp(logp[f] - log_norm) * comp[i] / z[f] : 0.0;
    const double global = m * pub[i] + (1 - m) * lm;
    (*p)[i] = static_cast<float>(l * (personal ? me[i] : 0.0f) + (1 - l) * global);
  }
}

WordKeystrokes WordStrip::Keystrokes(const std::vector<float>& p, const std::string& word,
                                     bool* in_strip) const {
  WordKeystrokes out;
  out.chars = CodePoints(word);
  *in_strip = false;
  int32_t g = -1;
  if (auto it = pub_->index.find(word); it != pub_->index.end()) {
    g = it->second;
  } else if (auto e = extra_index_.find(word); e != extra_index_.end()) {
    g = e->second;
  }
  if (g < 0 || out.chars == 0) return out;
  // Words ranked above the gold one (ties: the lower index first, as Top orders them).
  std::vector<int32_t> above;
  const float pg = p[g];
  for (int32_t i = 0; i < static_cast<int32_t>(p.size()); ++i) {
    if (i != g && (p[i] > pg || (p[i] == pg && i < g))) above.push_back(i);
  }
  int64_t typed = 0;
  for (size_t pos = 0; pos < word.size(); ++typed) {
    // Keep the words that start with the typed characters (each step narrows the last).
    std::vector<int32_t> keep;
    for (int32_t i : above) {
      if (words_[i].compare(0, pos, word, 0, pos) == 0 && words_[i].size() >= pos) keep.push_back(i);
    }
    above.swap(keep);
    if (above.size() < 3) {
      out.saved = out.chars - typed - 1;
      *in_strip = typed == 0;
      return out;
    }
    ++pos;
    while (pos < word.size() && IsContinuationByte(word[pos])) ++pos;
  }
  return out;
}

std::vector<std::pair<std::string, double>> WordStrip::Top(const std::vector<float>& p,
                                                           const std::string& typed,
                                                           int k) const {
  std::vector<int32_t> cand;
  for (int32_t i = 0; i < static_cast<int32_t>(words_.size()); ++i) {
    if (words_[i].compare(0, typed.size(), typed) == 0 && words_[i].size() >= typed.size()) {
      cand.push_back(i);
    }
  }
  const size_t n = std::min<size_t>(cand.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(cand.begin(), cand.begin() + n, cand.end(), [&](int32_t a, int32_t b) {
    return p[a] > p[b] || (p[a] == p[b] && a < b);
  });
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < n; ++i) out.emplace_back(words_[cand[i]], p[cand[i]]);
  return out;
}

}  // namespace fedlora::device
