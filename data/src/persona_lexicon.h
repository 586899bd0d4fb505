// Internal: the word pools and message templates of the synthetic personas.
//
// "General" pools are the shared language every persona and PublicCorpus() use. "Private"
// pools are where persona habits come from; none of their words appears in a general pool
// (tests check this), so public text says nothing about a persona's habits.
#ifndef FEDLORA_DATA_SRC_PERSONA_LEXICON_H_
#define FEDLORA_DATA_SRC_PERSONA_LEXICON_H_

#include <string>
#include <vector>

namespace fedlora::data::internal {

enum class Slot { kText, kGreet, kName, kPet, kHobby, kPlace, kFood, kTime };

// One piece of a parsed template: literal text or a slot to fill.
struct Segment {
  Slot slot;
  std::string text;  // Only for kText.
};
using Template = std::vector<Segment>;

struct Lexicon {
  // Templates, parsed from strings like "{greet} {name}, are you free {time}?".
  std::vector<Template> templates;
  // General language.
  std::vector<std::string> greetings, names, pets, hobbies, places, foods, times;
  std::vector<std::string> phrases, signoffs, end_styles;
  // Private habit pools.
  std::vector<std::string> private_greetings, private_names, private_pets, private_hobbies,
      private_places, private_foods, private_phrases, private_signoffs, private_end_styles,
      initials;
  // The literal text of all templates (for the general vocabulary).
  std::vector<std::string> template_strings;
};

// Returns the process-wide lexicon (built once).
const Lexicon& GetLexicon();

}  // namespace fedlora::data::internal

#endif  // FEDLORA_DATA_SRC_PERSONA_LEXICON_H_
