// Word n-gram counts (1-, 2- and 3-grams of the keyboard's word unit) for the lexicon strip
// (word_strip.h, docs/device.md "Keyboard strip"): the public n-gram that ships with a base
// model (its lexicon: the words a strip may show) and a user's personal n-gram, counted on the
// device from the user's own lines and never sent. Probabilities are Witten-Bell interpolated
// (word_strip.cc); this class only counts, caps and serializes.
#ifndef FEDLORA_DEVICE_WORD_NGRAM_H_
#define FEDLORA_DEVICE_WORD_NGRAM_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/device/keystrokes.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

// A word of a token sequence: ids[begin..end) is a word-starting piece and the continuation
// pieces after it, up to the next word-starting or special piece (the unit keystrokes.h and
// evaluate.h score). `text` is its characters (keystrokes.h's KeyboardVocab::text).
struct WordSpan {
  int64_t begin = 0, end = 0;
  std::string text;
};
std::vector<WordSpan> WordSpans(const std::vector<int64_t>& ids, const KeyboardVocab& kv);

class WordNgram {
 public:
  static constexpr char kLineStart[] = "<s>";  // history before a line's first word

  struct Unigram {
    int64_t count = 0;
    int64_t first_piece = -1;  // the word's first token id (how the LM predicts it)
    // Its second token id; kOnePiece for a word of one piece, kUnknownPiece when a file
    // written before second pieces were kept (4-column "u" lines) did not say.
    int64_t second_piece = kUnknownPiece;
  };
  static constexpr int64_t kOnePiece = -1;
  static constexpr int64_t kUnknownPiece = -2;
  // Context ("h1", or "h2\x1fh1") -> word -> count.
  using Followers = std::unordered_map<std::string, std::unordered_map<std::string, int64_t>>;

  // Counts the words of one line ([BOS] + ids, as Tokenizer::EncodeWithBos makes them).
  void AddIds(const std::vector<int64_t>& ids, const KeyboardVocab& kv);
  void AddLines(const model::Tokenizer& tokenizer, const KeyboardVocab& kv,
                const std::vector<std::string>& lines);

  const std::unordered_map<std::string, Unigram>& unigrams() const { return uni_; }
  const Followers& bigrams() const { return bi_; }
  const Followers& trigrams() const { return tri_; }
  static std::string Context(const std::string& h2, const std::string& h1);

  // Memory held by the counts, estimated (strings, hash nodes): the personal state's budget.
  size_t ApproxBytes() const;
  // Drops the rarest entries (count-1 trigrams, then bigrams, then higher counts, never
  // unigrams first) until ApproxBytes() <= max_bytes; unigrams go last, rarest first.
  void Prune(size_t max_bytes);

  // A self-describing text form ("fedlora-word-ngram 1" header, one n-gram a line, tabs);
  // Parse rejects anything else with INVALID_ARGUMENT.
  std::string Serialize() const;
  static absl::StatusOr<WordNgram> Parse(absl::string_view text);

 private:
  void Add(const std::string& h2, const std::string& h1, const std::string& w, int64_t piece,
           int64_t second);
  std::unordered_map<std::string, Unigram> uni_;
  Followers bi_, tri_;
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_WORD_NGRAM_H_
