// The keyboard's personal model on a phone (docs/device.md, "Keyboard strip"): the lexicon
// strip of word_strip.h over the public n-gram that ships with the base model
// (<model>/public_ngram.txt) and a personal word n-gram counted from the user's own text.
// The personal counts are derived from the encrypted text store (Observe each line the store
// keeps; Reset on forget), so at rest they exist only inside the store's AES-256-GCM file,
// and fedlora_forget erases them with it. Memory: the counts are pruned to max_bytes
// (ApproxBytes), the compiled strip holds about as much again.
#ifndef FEDLORA_DEVICE_PERSONAL_KEYBOARD_H_
#define FEDLORA_DEVICE_PERSONAL_KEYBOARD_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/device/word_strip.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

struct PersonalKeyboardOptions {
  size_t max_bytes = 2 << 20;  // the personal counts' budget (2 MiB)
  // Mixture weights; personal = 0.3 is a fixed weight (the simulator fits one per user on
  // held-back lines; a phone has no held-back text to fit on).
  StripWeights weights{0.3, 0.3, 0.5};
};

class PersonalKeyboard {
 public:
  static constexpr char kPublicNgramFile[] = "public_ngram.txt";
  // std::nullopt when `model_dir` ships no public n-gram (then the greedy strip is used);
  // INVALID_ARGUMENT for a malformed one.
  static absl::StatusOr<std::optional<PersonalKeyboard>> Load(
      const std::string& model_dir, const model::Tokenizer& tokenizer,
      PersonalKeyboardOptions options = {});

  // Counts one line of the user's text (pruned to the budget).
  void Observe(const std::string& line);
  // Forgets every personal count (the public lexicon stays).
  void Reset();
  // The strip with the personal counts as they are now (rebuilt after Observe/Reset).
  const WordStrip& Strip();
  const WordNgram& personal() const { return personal_; }
  size_t ApproxBytes() const { return personal_.ApproxBytes(); }

 private:
  PersonalKeyboard(std::shared_ptr<const PublicLexicon> pub, const model::Tokenizer& tokenizer,
                   PersonalKeyboardOptions options);
  std::shared_ptr<const PublicLexicon> pub_;
  const model::Tokenizer* tokenizer_;
  PersonalKeyboardOptions options_;
  WordNgram personal_;
  std::unique_ptr<WordStrip> strip_;  // null: to rebuild
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_PERSONAL_KEYBOARD_H_
