#include "fedlora/device/keystrokes.h"

#include <algorithm>

namespace fedlora::device {
namespace {

constexpr char kSpaceMarker[] = "\xE2\x96\x81";  // U+2581, sentencepiece's word boundary

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// "<0x41>" -> "A"; anything else unchanged.
std::string BytePiece(const std::string& piece) {
  if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>') {
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  return piece;
}

}  // namespace

KeyboardVocab KeyboardVocab::FromTokenizer(const model::Tokenizer& tokenizer) {
  KeyboardVocab kv;
  const int64_t n = tokenizer.vocab_size();
  kv.text.resize(n);
  kv.starts_word.resize(n);
  kv.special.resize(n);
  for (int64_t id = 0; id < n; ++id) {
    std::string piece = BytePiece(tokenizer.IdToPiece(id));
    kv.starts_word[id] = tokenizer.StartsWord(id);
    kv.special[id] = tokenizer.IsSpecial(id);
    if (kv.starts_word[id]) piece = piece.substr(std::string(kSpaceMarker).size());
    // A space marker inside a piece (rare) is a space.
    for (size_t p; (p = piece.find(kSpaceMarker)) != std::string::npos;) piece.replace(p, 3, " ");
    kv.text[id] = std::move(piece);
  }
  return kv;
}

WordKeystrokes WordKeystrokeSavings(const std::vector<int64_t>& word, const float* const* logp,
                                    int64_t vocab, const std::vector<int64_t>& greedy,
                                    const KeyboardVocab& kv) {
  WordKeystrokes out;
  const int64_t n = static_cast<int64_t>(word.size());
  if (n == 0 || static_cast<int64_t>(greedy.size()) != n + 1) return out;
  // The word's characters and where each token's characters start.
  std::string chars;
  std::vector<size_t> start(n);
  for (int64_t k = 0; k < n; ++k) {
    start[k] = chars.size();
    chars += kv.text[word[k]];
  }
  for (char ch : chars) out.chars += !IsContinuationByte(ch);
  if (out.chars == 0) return out;
  auto ends_word = [&](int64_t id) { return kv.starts_word[id] || kv.special[id]; };
  // greedy_ok[k]: greedy decoding from word[k] spells word[k+1..] and then ends the word.
  std::vector<bool> greedy_ok(n + 1);
  greedy_ok[n] = true;
  for (int64_t k = n - 1; k >= 0; --k) {
    greedy_ok[k] = greedy_ok[k + 1] && (k + 1 < n ? greedy[k + 1] == word[k + 1] : true);
  }
  const bool ends = ends_word(greedy[n]);
  int64_t typed = 0;  // code points typed so far
  for (size_t pos = 0; pos < chars.size(); ++typed) {
    // The token holding byte `pos` and the characters typed inside it.
    int64_t k = n - 1;
    while (k > 0 && start[k] > pos) --k;
    const std::string typed_in_token = chars.substr(start[k], pos - start[k]);
    const int64_t gold = word[k];
    const float gold_lp = logp[k][gold];
    int better = 0;
    for (int64_t t = 0; t < vocab && better < 3; ++t) {
      if (t == gold || kv.special[t] || kv.starts_word[t] != (k == 0)) continue;
      if (kv.text[t].compare(0, typed_in_token.size(), typed_in_token) != 0) continue;
      if (kv.text[t].size() < typed_in_token.size()) continue;
      if (logp[k][t] > gold_lp) ++better;
    }
    if (better < 3 && greedy_ok[k] && ends) {
      out.saved = out.chars - typed - 1;
      return out;
    }
    // Type one more character (a whole code point).
    ++pos;
    while (pos < chars.size() && IsContinuationByte(chars[pos])) ++pos;
  }
  return out;
}

}  // namespace fedlora::device
