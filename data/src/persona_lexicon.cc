#include "persona_lexicon.h"

#include <cassert>

namespace fedlora::data::internal {
namespace {

Slot SlotFromName(const std::string& name) {
  if (name == "greet") return Slot::kGreet;
  if (name == "name") return Slot::kName;
  if (name == "pet") return Slot::kPet;
  if (name == "hobby") return Slot::kHobby;
  if (name == "place") return Slot::kPlace;
  if (name == "food") return Slot::kFood;
  if (name == "time") return Slot::kTime;
  assert(false && "unknown template slot");
  return Slot::kText;
}

Template Parse(const std::string& s) {
  Template t;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t open = s.find('{', pos);
    if (open == std::string::npos) {
      t.push_back({Slot::kText, s.substr(pos)});
      break;
    }
    if (open > pos) t.push_back({Slot::kText, s.substr(pos, open - pos)});
    size_t close = s.find('}', open);
    assert(close != std::string::npos);
    t.push_back({SlotFromName(s.substr(open + 1, close - open - 1)), ""});
    pos = close + 1;
  }
  return t;
}

Lexicon Build() {
  Lexicon x;
  x.template_strings = {
      "{greet} {name}, want to grab {food} at the {place} after {hobby}?",
      "{greet} {name}, are you free {time}?",
      "just got back from {hobby} with {name}",
      "{pet} is sleeping on my bed again",
      "can we meet at the {place} {time}?",
      "running late, see you at the {place} in ten minutes",
      "did you see what {name} said about {hobby}?",
      "thanks for the {food} {time}",
      "took {pet} for a walk by the {place}",
      "i think i will skip {hobby} {time}, too tired",
      "how was your day?",
      "miss you {name}, call me {time}",
      "{greet}! are we still on for {food} {time}?",
      "i am at the {place} with {name}, come join us",
      "{hobby} was so good {time}",
      "should i bring {pet} to the {place}?",
      "can you pick up some {food} on the way?",
      "{name} says hi",
      "what time is {hobby} {time}?",
      "i love the {food} at the {place}",
      "good luck at {hobby} {time}",
      "{greet} {name}, happy birthday",
      "let me know when you get home",
      "i will be there in five minutes",
      "{pet} wants to say hi to {name}",
      "not sure about {time}, maybe after {hobby}?",
      "who is coming to the {place} {time}?",
      "{greet}, what are you up to {time}?",
      "{name} and i are getting {food} {time}",
      "can't wait for {hobby} with {name} {time}",
  };
  for (const std::string& s : x.template_strings) x.templates.push_back(Parse(s));

  x.greetings = {"hey", "hi", "hello", "good morning"};
  x.names = {"mom", "dad", "guys", "team", "buddy", "everyone", "friend", "sis"};
  x.pets = {"the dog", "the cat", "the puppy", "my cat"};
  x.hobbies = {"soccer", "tennis", "running", "dance", "music", "art"};
  x.places = {"park", "store", "office", "station", "mall", "gym", "library", "cafe"};
  x.foods = {"pizza", "lunch", "dinner", "coffee", "breakfast", "sandwiches", "ice cream"};
  x.times = {"today",       "tonight", "tomorrow", "this weekend",   "on friday", "on monday",
             "on saturday", "later",   "at noon",  "in the morning", "next week", "after work"};
  x.phrases = {"ok", "sure", "sounds good", "no worries", "by the way"};
  x.signoffs = {"see you soon", "talk later", "thanks", "bye"};
  x.end_styles = {"", "!", "."};

  x.private_greetings = {"yo",   "heya", "hiya",    "howdy", "sup",    "oi",
                         "ahoy", "hola", "bonjour", "aloha", "wassup", "hiii"};
  x.private_names = {
      "maya",  "theo",  "priya", "jonas", "lena",  "omar",   "zoe",   "felix", "ines",  "kai",
      "nadia", "ravi",  "sofia", "hugo",  "amara", "leo",    "yuki",  "mateo", "freya", "dev",
      "chloe", "idris", "nora",  "elias", "tessa", "malik",  "iris",  "bruno", "ada",   "kofi",
      "mira",  "soren", "lucia", "arjun", "elsa",  "tomas",  "noor",  "finn",  "alma",  "diego",
      "hana",  "otto",  "rosa",  "emeka", "vera",  "jasper", "leila", "niko",  "june",  "sami",
      "greta", "ezra",  "talia", "marco", "keiko", "rufus",  "dalia", "anton", "bea",   "cyrus"};
  x.private_pets = {"biscuit", "pickles",  "mochi",   "noodle",  "ziggy",    "pepper",
                    "nugget",  "bubbles",  "pretzel", "socks",   "gizmo",    "clover",
                    "tofu",    "peanut",   "mango",   "captain", "luna",     "pixel",
                    "sprout",  "juniper",  "olive",   "rocket",  "fudge",    "bingo",
                    "marble",  "snickers", "widget",  "tater",   "sherlock", "paprika"};
  x.private_hobbies = {"climbing", "pottery", "salsa",    "karaoke",  "chess",      "fencing",
                       "archery",  "rowing",  "knitting", "ceramics", "bouldering", "surfing",
                       "skating",  "judo",    "poker",    "trivia",   "kayaking",   "origami",
                       "improv",   "birding", "cycling",  "baking",   "gardening",  "volleyball"};
  x.private_places = {"harbor",     "pier",       "boardwalk",   "lighthouse", "quarry",
                      "greenhouse", "marina",     "brewery",     "arcade",     "bakery",
                      "rooftop",    "lagoon",     "observatory", "vineyard",   "skatepark",
                      "aquarium",   "orchard",    "plaza",       "dunes",      "boathouse",
                      "treehouse",  "distillery", "bazaar",      "pavilion"};
  x.private_foods = {"tacos",   "ramen",    "dumplings", "sushi",   "pho",    "bagels", "churros",
                     "falafel", "burritos", "waffles",   "pierogi", "curry",  "gelato", "nachos",
                     "kimchi",  "bao",      "empanadas", "crepes",  "paella", "tapas"};
  x.private_phrases = {"no biggie", "cool beans", "okie dokie", "easy peasy", "holy moly",
                       "no cap",    "big mood",   "lowkey",     "say less",   "righto",
                       "welp",      "yikes",      "woohoo",     "gotcha",     "neato",
                       "jeepers",   "dang",       "tally ho",   "oh snap",    "bet",
                       "word up",   "rad",        "sweet as",   "fr fr"};
  x.private_signoffs = {"xoxo", "ttyl",    "cheers", "laters",  "peace out", "hugs",
                        "ciao", "toodles", "xx",     "love ya", "cya",       "catch ya"};
  x.private_end_styles = {"!!", " :)", " :D", " lol", " haha", "...", " <3", " hehe"};
  x.initials = {"b", "c", "d", "e", "f", "g", "h", "j", "k", "l",
                "m", "n", "p", "r", "s", "t", "v", "w", "z"};
  return x;
}

}  // namespace

const Lexicon& GetLexicon() {
  static const Lexicon* lexicon = new Lexicon(Build());
  return *lexicon;
}

}  // namespace fedlora::data::internal
