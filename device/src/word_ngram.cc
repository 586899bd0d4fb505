#include "fedlora/device/word_ngram.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fedlora::device {
namespace {

constexpr char kHeader[] = "fedlora-word-ngram 1";
constexpr char kSep = '\x1f';

// A word the text form can hold (no tab, newline or separator).
bool Storable(const std::string& w) {
  return !w.empty() && w.find_first_of(std::string("\t\n\r") + kSep) == std::string::npos;
}

// Hash-node and string overhead of one entry, roughly (libstdc++, 64-bit).
constexpr size_t kNodeBytes = 64;

size_t FollowersBytes(const WordNgram::Followers& f) {
  size_t b = 0;
  for (const auto& [ctx, words] : f) {
    b += kNodeBytes + ctx.size() + 56;  // the inner map itself
    for (const auto& [w, c] : words) b += kNodeBytes + w.size();
  }
  return b;
}

// Removes entries with count <= max_count; true when anything went.
bool DropRare(WordNgram::Followers* f, int64_t max_count) {
  bool any = false;
  for (auto it = f->begin(); it != f->end();) {
    auto& words = it->second;
    for (auto w = words.begin(); w != words.end();) {
      if (w->second <= max_count) {
        w = words.erase(w);
        any = true;
      } else {
        ++w;
      }
    }
    it = words.empty() ? f->erase(it) : std::next(it);
  }
  return any;
}

}  // namespace

std::vector<WordSpan> WordSpans(const std::vector<int64_t>& ids, const KeyboardVocab& kv) {
  std::vector<WordSpan> out;
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t v = static_cast<int64_t>(kv.text.size());
  auto valid = [&](int64_t id) { return id >= 0 && id < v; };
  for (int64_t i = 0; i < n; ++i) {
    if (!valid(ids[i]) || !kv.starts_word[ids[i]]) continue;
    WordSpan s;
    s.begin = i;
    s.text = kv.text[ids[i]];
    int64_t j = i + 1;
    while (j < n && valid(ids[j]) && !kv.starts_word[ids[j]] && !kv.special[ids[j]]) {
      s.text += kv.text[ids[j]];
      ++j;
    }
    s.end = j;
    out.push_back(std::move(s));
    i = j - 1;
  }
  return out;
}

std::string WordNgram::Context(const std::string& h2, const std::string& h1) {
  return absl::StrCat(h2, std::string(1, kSep), h1);
}

void WordNgram::Add(const std::string& h2, const std::string& h1, const std::string& w,
                    int64_t piece, int64_t second) {
  Unigram& u = uni_[w];
  u.count += 1;
  if (u.first_piece < 0) u.first_piece = piece;
  if (u.second_piece == kUnknownPiece) u.second_piece = second;
  bi_[h1][w] += 1;
  tri_[Context(h2, h1)][w] += 1;
}

void WordNgram::AddIds(const std::vector<int64_t>& ids, const KeyboardVocab& kv) {
  std::string h2 = kLineStart, h1 = kLineStart;
  for (const WordSpan& s : WordSpans(ids, kv)) {
    if (!Storable(s.text)) continue;
    Add(h2, h1, s.text, ids[s.begin], s.end - s.begin >= 2 ? ids[s.begin + 1] : kOnePiece);
    h2 = std::move(h1);
    h1 = s.text;
  }
}

void WordNgram::AddLines(const model::Tokenizer& tokenizer, const KeyboardVocab& kv,
                         const std::vector<std::string>& lines) {
  for (const auto& l : lines) AddIds(tokenizer.EncodeWithBos(l), kv);
}

size_t WordNgram::ApproxBytes() const {
  size_t b = 0;
  for (const auto& [w, u] : uni_) b += kNodeBytes + w.size() + 16;
  return b + FollowersBytes(bi_) + FollowersBytes(tri_);
}

void WordNgram::Prune(size_t max_bytes) {
  for (int64_t c = 1; ApproxBytes() > max_bytes && (!tri_.empty() || !bi_.empty()); ++c) {
    DropRare(&tri_, c);
    if (ApproxBytes() <= max_bytes) return;
    DropRare(&bi_, c);
  }
  if (ApproxBytes() <= max_bytes) return;
  // Rarest unigrams last (ties by word, so the result does not depend on hash order).
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [w, u] : uni_) order.emplace_back(u.count, w);
  std::sort(order.begin(), order.end());
  for (const auto& [c, w] : order) {
    if (ApproxBytes() <= max_bytes) break;
    uni_.erase(w);
  }
}

std::string WordNgram::Serialize() const {
  std::string out = absl::StrCat(kHeader, "\n");
  std::vector<std::string> lines;
  for (const auto& [w, u] : uni_) lines.push_back(absl::StrCat("u\t", w, "\t", u.count, "\t", u.first_piece, "\t", u.second_piece));
  for (const auto& [h, ws] : bi_) {
    for (const auto& [w, c] : ws) lines.push_back(absl::StrCat("b\t", h, "\t", w, "\t", c));
  }
  for (const auto& [h, ws] : tri_) {
    const size_t cut = h.find(kSep);
    for (const auto& [w, c] : ws) {
      lines.push_back(
          absl::StrCat("t\t", h.substr(0, cut), "\t", h.substr(cut + 1), "\t", w, "\t", c));
    }
  }
  std::sort(lines.begin(), lines.end());  // byte-stable output
  for (const auto& l : lines) absl::StrAppend(&out, l, "\n");
  return out;
}

absl::StatusOr<WordNgram> WordNgram::Parse(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kHeader) {
    return absl::InvalidArgumentError(
        absl::StrCat("word n-gram: missing header '", kHeader, "' (not a fedlora word n-gram)"));
  }
  WordNgram g;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], '\t');
    int64_t c = 0, piece = 0, second = kUnknownPiece;
    const bool ok =
        (f[0] == "u" && (f.size() == 4 || f.size() == 5) && absl::SimpleAtoi(f[2], &c) &&
         absl::SimpleAtoi(f[3], &piece) &&
         (f.size() == 4 || (absl::SimpleAtoi(f[4], &second) && second >= kUnknownPiece))) ||
        (f[0] == "b" && f.size() == 4 && absl::SimpleAtoi(f[3], &c)) ||
        (f[0] == "t" && f.size() == 5 && absl::SimpleAtoi(f[4], &c));
    if (!ok || c <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("word n-gram: line ", i + 1, " is malformed: '", lines[i], "'"));
    }
    if (f[0] == "u") {
      g.uni_[f[1]] = {c, piece, second};
    } else if (f[0] == "b") {
      g.bi_[f[1]][f[2]] = c;
    } else {
      g.tri_[Context(f[1], f[2])][f[3]] = c;
    }
  }
  return g;
}

}  // namespace fedlora::device
