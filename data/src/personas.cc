#include "fedlora/data/personas.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/random.h"
#include "persona_lexicon.h"

namespace fedlora::data {
namespace {

using internal::GetLexicon;
using internal::Lexicon;
using internal::Slot;

// Stream ids for DeriveSeed; persona i uses 2i (profile) and 2i+1 (messages).
constexpr uint64_t kPublicStream = 0xffffffffffffULL;

// Returns `k` distinct elements of `pool` (k <= pool.size()).
std::vector<std::string> PickDistinct(SplitMix64& rng, const std::vector<std::string>& pool,
                                      size_t k) {
  std::vector<size_t> idx(pool.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::vector<std::string> out;
  for (size_t i = 0; i < k; ++i) {
    size_t j = i + static_cast<size_t>(rng.Uniform(idx.size() - i));
    std::swap(idx[i], idx[j]);
    out.push_back(pool[idx[i]]);
  }
  return out;
}

PersonaProfile MakeProfile(uint64_t seed, int index) {
  const Lexicon& x = GetLexicon();
  SplitMix64 rng(DeriveSeed(seed, 2 * static_cast<uint64_t>(index)));
  PersonaProfile p;
  p.id = absl::StrFormat("persona_%04d", index);
  p.greeting = rng.Pick(x.private_greetings);
  p.friends = PickDistinct(rng, x.private_names, 2 + rng.Uniform(2));
  p.pet = rng.Pick(x.private_pets);
  p.hobbies = PickDistinct(rng, x.private_hobbies, 2);
  p.places = PickDistinct(rng, x.private_places, 2);
  p.foods = PickDistinct(rng, x.private_foods, 2);
  p.phrases = PickDistinct(rng, x.private_phrases, 2);
  p.signoff = rng.Bernoulli(0.5)
                  ? absl::StrCat(rng.Pick(x.private_signoffs), " - ", rng.Pick(x.initials))
                  : rng.Pick(x.private_signoffs);
  p.end_style = rng.Pick(x.private_end_styles);
  p.signoff_rate = 0.3 + 0.4 * rng.UniformDouble();
  p.phrase_rate = 0.25 + 0.25 * rng.UniformDouble();
  return p;
}

// Fills slots either from the persona's habits (probability `strength`) or the general pools.
class MessageWriter {
 public:
  MessageWriter(const PersonaProfile* persona, double strength, uint64_t seed)
      : x_(GetLexicon()), persona_(persona), strength_(persona ? strength : 0), rng_(seed) {}

  std::string Next() {
    std::string msg;
    for (const internal::Segment& seg : rng_.Pick(x_.templates)) {
      msg += seg.slot == Slot::kText ? seg.text : Fill(seg.slot);
    }
    const double phrase_rate = persona_ ? persona_->phrase_rate : 0.15;
    if (rng_.Bernoulli(phrase_rate)) {
      const std::string phrase = Own() ? rng_.Pick(persona_->phrases) : rng_.Pick(x_.phrases);
      msg = rng_.Bernoulli(0.5) ? absl::StrCat(phrase, ", ", msg) : absl::StrCat(msg, ", ", phrase);
    }
    if (msg.back() != '?') msg += Own() ? persona_->end_style : rng_.Pick(x_.end_styles);
    const double signoff_rate = persona_ ? persona_->signoff_rate : 0.15;
    if (rng_.Bernoulli(signoff_rate)) {
      absl::StrAppend(&msg, " ", Own() ? persona_->signoff : rng_.Pick(x_.signoffs));
    }
    return msg;
  }

 private:
  bool Own() { return persona_ != nullptr && rng_.Bernoulli(strength_); }

  std::string Fill(Slot slot) {
    const bool own = Own();
    switch (slot) {
      case Slot::kGreet:
        return own ? persona_->greeting : rng_.Pick(x_.greetings);
      case Slot::kName:
        if (!own) return rng_.Pick(x_.names);
        // The signature name dominates: weight 3 against 1 for each other friend.
        return rng_.Bernoulli(0.6) ? persona_->friends[0] : rng_.Pick(persona_->friends);
      case Slot::kPet:
        return own ? persona_->pet : rng_.Pick(x_.pets);
      case Slot::kHobby:
        return own ? rng_.Pick(persona_->hobbies) : rng_.Pick(x_.hobbies);
      case Slot::kPlace:
        return own ? rng_.Pick(persona_->places) : rng_.Pick(x_.places);
      case Slot::kFood:
        return own ? rng_.Pick(persona_->foods) : rng_.Pick(x_.foods);
      case Slot::kTime:
        return rng_.Pick(x_.times);
      case Slot::kText:
        break;
    }
    return "";
  }

  const Lexicon& x_;
  const PersonaProfile* persona_;  // Null for the public corpus.
  double strength_;
  SplitMix64 rng_;
};

}  // namespace

std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> words;
  std::string cur;
  for (char c : text) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '\'') {
      cur += absl::ascii_tolower(static_cast<unsigned char>(c));
    } else if (!cur.empty()) {
      words.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

std::vector<std::string> GeneralVocabulary() {
  const Lexicon& x = GetLexicon();
  std::set<std::string> vocab;
  auto add = [&](const std::vector<std::string>& texts) {
    for (const std::string& t : texts) {
      for (std::string& w : SplitWords(t)) vocab.insert(std::move(w));
    }
  };
  std::vector<std::string> literal;
  for (const internal::Template& t : x.templates) {
    for (const internal::Segment& s : t) {
      if (s.slot == Slot::kText) literal.push_back(s.text);
    }
  }
  for (const std::vector<std::string>* pool :
       {static_cast<const std::vector<std::string>*>(&literal), &x.greetings, &x.names, &x.pets,
        &x.hobbies, &x.places, &x.foods, &x.times, &x.phrases, &x.signoffs, &x.end_styles}) {
    add(*pool);
  }
  return {vocab.begin(), vocab.end()};
}

std::vector<std::string> PersonaProfile::HabitWords() const {
  static const std::set<std::string>* general = [] {
    auto v = GeneralVocabulary();
    return new std::set<std::string>(v.begin(), v.end());
  }();
  std::set<std::string> words;
  std::vector<std::string> texts = {greeting, pet, signoff, end_style};
  for (const std::vector<std::string>* v : {&friends, &hobbies, &places, &foods, &phrases}) {
    texts.insert(texts.end(), v->begin(), v->end());
  }
  for (const std::string& t : texts) {
    for (std::string& w : SplitWords(t)) {
      if (general->count(w) == 0) words.insert(std::move(w));
    }
  }
  return {words.begin(), words.end()};
}

std::vector<PersonaProfile> MakePersonaProfiles(const PersonaOptions& options) {
  std::vector<PersonaProfile> out;
  for (int i = 0; i < options.users; ++i) out.push_back(MakeProfile(options.seed, i));
  return out;
}

FederatedDataset GeneratePersonas(const PersonaOptions& options) {
  FederatedDataset ds;
  ds.source = absl::StrCat("personas:users=", options.users, ",seed=", options.seed,
                           ",lines=", options.lines_per_user);
  for (int i = 0; i < options.users; ++i) {
    PersonaProfile p = MakeProfile(options.seed, i);
    MessageWriter writer(&p, options.habit_strength,
                         DeriveSeed(options.seed, 2 * static_cast<uint64_t>(i) + 1));
    std::vector<std::string> lines;
    for (int l = 0; l < options.lines_per_user; ++l) lines.push_back(writer.Next());
    ds.users.push_back(SplitByPosition(p.id, std::move(lines), options.test_fraction));
  }
  return ds;
}

std::string PublicCorpus(const PersonaOptions& options, int lines) {
  MessageWriter writer(nullptr, 0, DeriveSeed(options.seed, kPublicStream));
  std::vector<std::string> out;
  for (int l = 0; l < lines; ++l) out.push_back(writer.Next());
  return absl::StrJoin(out, "\n");
}

}  // namespace fedlora::data
