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
    const WordNgram::Unigram& u = pub.unigrams().at(words[i]);
    first_piece.push_back(static_cast<int32_t>(u.first_piece));
    second_piece.push_back(static_cast<int32_t>(u.second_piece));
  }
  // A piece is expandable when its words have two different second pieces, all known.
  std::vector<int32_t> seen(kv.text.size(), WordNgram::kUnknownPiece - 1);
  std::vector<uint8_t> unknown(kv.text.size(), 0);
  expandable.assign(kv.text.size(), 0);
  for (size_t i = 0; i < words.size(); ++i) {
    const int32_t f = first_piece[i], sp = second_piece[i];
    if (sp == WordNgram::kUnknownPiece) unknown[f] = 1;
    if (seen[f] == WordNgram::kUnknownPiece - 1) {
      seen[f] = sp;
    } else if (seen[f] != sp) {
      expandable[f] = 1;
    }
  }
  for (size_t f = 0; f < expandable.size(); ++f) expandable[f] = expandable[f] && !unknown[f];
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
  second_piece_ = pub_->second_piece;
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
      const WordNgram::Unigram& u = personal->unigrams().at(w);
      first_piece_.push_back(static_cast<int32_t>(u.first_piece));
      second_piece_.push_back(static_cast<int32_t>(u.second_piece));
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
  ends_word_.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    starts_word_[i] = pub_->kv.starts_word[i] && !pub_->kv.special[i];
    ends_word_[i] = pub_->kv.starts_word[i] || pub_->kv.special[i];
  }
  group_start_.assign(static_cast<size_t>(vocab) + 1, 0);
  for (int32_t f : first_piece_) ++group_start_[f + 1];
  for (int64_t i = 0; i < vocab; ++i) group_start_[i + 1] += group_start_[i];
  group_words_.resize(words_.size());
  std::vector<int32_t> fill(group_start_.begin(), group_start_.end() - 1);
  for (size_t i = 0; i < words_.size(); ++i) group_words_[fill[first_piece_[i]]++] = static_cast<int32_t>(i);
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

void WordStrip::Score(const std::string& h2, const std::string& h1, const float* logp,
                      StripScores* s) const {
  const size_t v = words_.size();
  std::vector<float> pub, me;
  Ngram(pub_->ngram, pub_uni_, h2, h1, &pub);
  const bool personal = has_personal_;
  if (personal) Ngram(personal_, me_uni_, h2, h1, &me);
  // C(w | first piece): the completion counts, normalized per first piece.
  const double cp = personal ? weights_.completion_personal : 0.0;
  std::vector<float>& comp = s->comp;
  comp.resize(v);
  for (size_t i = 0; i < v; ++i) comp[i] = static_cast<float>((1 - cp) * pub[i] + (personal ? cp * me[i] : 0.0));
  s->z.assign(starts_word_.size(), 0.0);
  for (size_t i = 0; i < v; ++i) s->z[first_piece_[i]] += comp[i];
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
  s->p1.assign(starts_word_.size(), 0.0);
  for (size_t t = 0; t < starts_word_.size(); ++t) {
    if (starts_word_[t]) s->p1[t] = std::exp(logp[t] - log_norm);
  }
  const double l = personal ? weights_.personal : 0.0;
  const double m = weights_.public_ngram;
  s->lm_weight = (1 - l) * (1 - m);
  s->p.resize(v);
  for (size_t i = 0; i < v; ++i) {
    const int32_t f = first_piece_[i];
    const double lm = s->z[f] > 0 ? s->p1[f] * comp[i] / s->z[f] : 0.0;
    const double global = m * pub[i] + (1 - m) * lm;
    s->p[i] = static_cast<float>(l * (personal ? me[i] : 0.0f) + (1 - l) * global);
  }
}

void WordStrip::Distribution(const std::string& h2, const std::string& h1, const float* logp,
                             std::vector<float>* p) const {
  StripScores s;
  Score(h2, h1, logp, &s);
  *p = std::move(s.p);
}

const float* NextPieceRows::Find(int32_t piece) const {
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] == piece) return logp[i];
  }
  return nullptr;
}

std::vector<int32_t> WordStrip::PiecesToExpand(const float* logp, const std::string& typed) const {
  std::vector<int32_t> cand;
  const int k = weights_.second_pieces;
  if (k <= 0) return cand;
  const KeyboardVocab& kv = pub_->kv;
  for (int32_t t = 0; t < static_cast<int32_t>(pub_->expandable.size()); ++t) {
    if (!pub_->expandable[t] || !starts_word_[t] || !std::isfinite(logp[t])) continue;
    const std::string& text = kv.text[t];
    const size_t n = std::min(text.size(), typed.size());
    if (text.compare(0, n, typed, 0, n) == 0) cand.push_back(t);
  }
  const size_t n = std::min(cand.size(), static_cast<size_t>(k));
  std::partial_sort(cand.begin(), cand.begin() + n, cand.end(), [&](int32_t a, int32_t b) {
    return logp[a] > logp[b] || (logp[a] == logp[b] && a < b);
  });
  cand.resize(n);
  return cand;
}

void WordStrip::RefineGroup(const StripScores& s, int32_t f, const float* q,
                            std::vector<std::pair<int32_t, float>>* out) const {
  out->clear();
  const int32_t b = group_start_[f], e = group_start_[f + 1];
  if (e - b < 2 || s.z[f] <= 0) return;
  // The group's second pieces: the model's probability of each and C's mass under it.
  std::vector<std::pair<int32_t, double>> z2;  // second piece -> sum of comp
  for (int32_t j = b; j < e; ++j) {
    const int32_t w = group_words_[j], sp = second_piece_[w];
    if (sp == WordNgram::kUnknownPiece || sp >= static_cast<int32_t>(ends_word_.size())) return;
    auto it = std::find_if(z2.begin(), z2.end(), [&](const auto& x) { return x.first == sp; });
    if (it == z2.end()) {
      z2.emplace_back(sp, s.comp[w]);
    } else {
      it->second += s.comp[w];
    }
  }
  if (z2.size() < 2) return;
  double end = 0;
  for (size_t t = 0; t < ends_word_.size(); ++t) {
    if (ends_word_[t]) end += std::exp(q[t]);
  }
  auto prob = [&](int32_t sp) { return sp == WordNgram::kOnePiece ? end : std::exp(q[sp]); };
  double total = 0;
  for (const auto& [sp, mass] : z2) total += prob(sp);
  if (!(total > 0)) return;
  for (int32_t j = b; j < e; ++j) {
    const int32_t w = group_words_[j], sp = second_piece_[w];
    double mass = 0;
    for (const auto& x : z2) {
      if (x.first == sp) mass = x.second;
    }
    const double lm_old = s.p1[f] * s.comp[w] / s.z[f];
    const double a = weights_.second_piece_weight;
    const double by_second = mass > 0 ? prob(sp) / total * s.comp[w] / mass : 0.0;
    const double lm_new = s.p1[f] * (a * by_second + (1 - a) * s.comp[w] / s.z[f]);
    out->emplace_back(w, static_cast<float>(s.p[w] + s.lm_weight * (lm_new - lm_old)));
  }
}

void WordStrip::Refine(const StripScores& s, const std::vector<int32_t>& pieces,
                       const NextPieceRows& rows, std::vector<float>* p) const {
  *p = s.p;
  std::vector<std::pair<int32_t, float>> refined;
  for (int32_t f : pieces) {
    const float* q = rows.Find(f);
    if (q == nullptr) continue;
    RefineGroup(s, f, q, &refined);
    for (const auto& [w, x] : refined) (*p)[w] = x;
  }
}

int32_t WordStrip::IndexOf(const std::string& word) const {
  if (auto it = pub_->index.find(word); it != pub_->index.end()) return it->second;
  if (auto e = extra_index_.find(word); e != extra_index_.end()) return e->second;
  return -1;
}

WordKeystrokes WordStrip::Keystrokes(const std::vector<float>& p, const std::string& word,
                                     bool* in_strip) const {
  StripScores s;
  s.p = p;
  return Keystrokes(s, nullptr, nullptr, word, in_strip);
}

WordKeystrokes WordStrip::Keystrokes(const StripScores& s, const float* logp,
                                     const NextPieceRows* rows, const std::string& word,
                                     bool* in_strip) const {
  WordKeystrokes out;
  out.chars = CodePoints(word);
  *in_strip = false;
  const int32_t g = IndexOf(word);
  if (g < 0 || out.chars == 0) return out;
  const std::vector<float>& p = s.p;
  const bool refine = logp != nullptr && rows != nullptr && weights_.second_pieces > 0;
  // Refined values of the groups expanded for the current prefix (stamped per prefix).
  std::vector<float> val;
  std::vector<int32_t> stamp;
  std::vector<std::pair<int32_t, std::vector<std::pair<int32_t, float>>>> groups;  // memo
  if (refine) {
    val.resize(p.size());
    stamp.assign(p.size(), -1);
  }
  // The words that start with the typed characters (each step narrows the last).
  std::vector<int32_t> cand(p.size());
  for (int32_t i = 0; i < static_cast<int32_t>(p.size()); ++i) cand[i] = i;
  int32_t typed = 0;
  for (size_t pos = 0; pos < word.size(); ++typed) {
    std::vector<int32_t> keep;
    for (int32_t i : cand) {
      if (words_[i].compare(0, pos, word, 0, pos) == 0 && words_[i].size() >= pos) keep.push_back(i);
    }
    cand.swap(keep);
    if (refine) {
      for (int32_t f : PiecesToExpand(logp, word.substr(0, pos))) {
        const float* q = rows->Find(f);
        if (q == nullptr) continue;
        auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == f; });
        if (it == groups.end()) {
          groups.emplace_back(f, std::vector<std::pair<int32_t, float>>());
          RefineGroup(s, f, q, &groups.back().second);
          it = groups.end() - 1;
        }
        for (const auto& [w, x] : it->second) {
          stamp[w] = typed;
          val[w] = x;
        }
      }
    }
    auto at = [&](int32_t i) { return refine && stamp[i] == typed ? val[i] : p[i]; };
    // Words ranked above the gold one (ties: the lower index first, as Top orders them).
    const float pg = at(g);
    int above = 0;
    for (int32_t i : cand) {
      const float x = at(i);
      if (i != g && (x > pg || (x == pg && i < g)) && ++above >= 3) break;
    }
    if (above < 3) {
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
