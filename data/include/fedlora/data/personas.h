// Synthetic "keyboard personas": the built-in, zero-download federated dataset.
//
// Every persona types short chat messages built from one shared general language (templated
// greetings, plans, questions, time words) whose slots it fills, most of the time, with its
// own private habits: friends' names (the first is its signature name), a pet, hobbies,
// places, foods, a favourite greeting, habitual phrases, a sign-off and an end-of-message
// style. The habit words come from pools that never appear in PublicCorpus(), so this is a
// measurable personalization ground truth: a model pretrained on the public text cannot
// predict a persona's names and phrases; one fine-tuned on the persona's train text can.
//
// All output is deterministic for PersonaOptions::seed (portable splitmix64, see rng.h), and
// persona i does not depend on the total number of users. The vocabulary is a few hundred
// lowercase words, so a tiny model with a 1-2k piece tokenizer can learn it.
//
// Example message: "yo maya, want to grab tacos at the harbor after climbing? cheers - j"
#ifndef FEDLORA_DATA_PERSONAS_H_
#define FEDLORA_DATA_PERSONAS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "fedlora/data/dataset.h"

namespace fedlora::data {

struct PersonaOptions {
  int users = 200;              // Number of personas (>= 0).
  int lines_per_user = 60;      // Messages per persona, train + test (>= 0).
  uint64_t seed = 1;            // Same seed -> identical personas and text.
  double test_fraction = 0.2;   // Per-persona split by position, as SplitByPosition.
  double habit_strength = 0.8;  // Probability that a slot uses the persona's own habit rather
                                // than a general-language filler; 0 makes personas generic.
};

// One persona's private habits (all lowercase).
struct PersonaProfile {
  std::string id;                    // "persona_0007" (zero-padded so ids sort in order).
  std::string greeting;              // Favourite greeting, e.g. "yo".
  std::vector<std::string> friends;  // 2-3 names; friends[0] is the signature name.
  std::string pet;                   // Pet name.
  std::vector<std::string> hobbies;  // 2 hobbies, e.g. "climbing".
  std::vector<std::string> places;   // 2 places, e.g. "harbor" (used as "the harbor").
  std::vector<std::string> foods;    // 2 foods, e.g. "tacos".
  std::vector<std::string> phrases;  // 2 habitual phrases, e.g. "no biggie".
  std::string signoff;               // e.g. "cheers - j".
  std::string end_style;             // Appended to messages, e.g. "!!" or " lol" (may be "").
  double signoff_rate = 0;           // Probability a message ends with the sign-off.
  double phrase_rate = 0;            // Probability a message carries a habitual phrase.

  // Returns the distinct words of this persona's habits that are not in the general language
  // (GeneralVocabulary()), sorted; the signature name is always among them.
  std::vector<std::string> HabitWords() const;
};

// Returns the profiles GeneratePersonas() uses for `options`, in user order.
std::vector<PersonaProfile> MakePersonaProfiles(const PersonaOptions& options);

// Returns options.users personas with options.lines_per_user messages each, split by position.
// source is "personas:users=N,seed=S,lines=L".
FederatedDataset GeneratePersonas(const PersonaOptions& options);

// Returns `lines` messages ('\n'-separated, no trailing newline) of the shared general
// language only, for central pretraining: same templates, generic fillers, no word of any
// private habit pool. Deterministic for options.seed (independent of options.users).
std::string PublicCorpus(const PersonaOptions& options, int lines);

// Returns the sorted distinct words of the general language (templates and generic fillers):
// every word PublicCorpus() can produce.
std::vector<std::string> GeneralVocabulary();

// Splits text into lowercase words (runs of letters, digits and apostrophes); the word
// notion used by HabitWords() and GeneralVocabulary().
std::vector<std::string> SplitWords(const std::string& text);

}  // namespace fedlora::data

#endif  // FEDLORA_DATA_PERSONAS_H_
