// Keystroke savings of a keyboard's 3-slot suggestion strip (docs/device.md, "Keyboard
// metrics"). For each word of the user's text, given the text before it, the user types the
// word's characters one at a time; after c characters (c = 0, 1, ...) the strip shows the 3
// most likely words that start with them. The first time the word is in the strip, one tap
// enters it: the word costs c + 1 keystrokes instead of its length L, saving L - c - 1. A word
// never in the strip costs L and saves nothing. Savings = saved keystrokes / all keystrokes
// (characters, counted as Unicode code points; spaces are not counted).
//
// The strip after c characters: at the token where the typed characters end, the candidates
// are the tokens that extend the typed characters of that token (word-starting tokens for the
// word's first token, continuation tokens after it), ranked by the model; the word is in the
// strip when its own token is among the 3 best candidates and greedy decoding from it spells
// the rest of the word and then ends it (the same completion rule as next-word top-3, which
// is the c = 0 case). Typed characters are assumed to be tokenized as the word's own tokens.
#ifndef FEDLORA_DEVICE_KEYSTROKES_H_
#define FEDLORA_DEVICE_KEYSTROKES_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

// What the strip needs to know of each vocabulary entry.
struct KeyboardVocab {
  std::vector<std::string> text;   // the piece's characters; a word-starting piece's leading
                                   // space marker removed, byte pieces as their byte
  std::vector<bool> starts_word;   // begins a new word
  std::vector<bool> special;       // BOS/EOS/UNK/...: never suggested
  static KeyboardVocab FromTokenizer(const model::Tokenizer& tokenizer);
};

struct WordKeystrokes {
  int64_t chars = 0;  // L
  int64_t saved = 0;  // L - c - 1 at the first c that shows the word, else 0
};

// `word` holds the word's token ids (the first one starts the word). `logp` row k holds the
// log-probabilities predicting word[k] (rows 0..n-1), and `greedy` the argmax of each row,
// plus one more entry: the argmax after the word's last token (which must end the word).
WordKeystrokes WordKeystrokeSavings(const std::vector<int64_t>& word, const float* const* logp,
                                    int64_t vocab, const std::vector<int64_t>& greedy,
                                    const KeyboardVocab& kv);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_KEYSTROKES_H_
