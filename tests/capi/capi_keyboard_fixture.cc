// Writes the model folder CApiKeyboardTest opens (ctest runs it as CApiKeyboard.Setup):
// capi_keyboard_fixture OUT_DIR copies the tiny base from ../shared and adds the public
// lexicon it ships (public_ngram.txt, written as fedlora pretrain writes it). A separate
// process because the test links libfedlora.so only: the static device libraries in the same
// process would be a second copy of the device code, and of the generated protobuf code that
// libprotobuf refuses to register twice ("File already exists in database").
#include <filesystem>
#include <iostream>
#include <string>

#include "fedlora/common/file_util.h"
#include "fedlora/device/keystrokes.h"
#include "fedlora/device/personal_keyboard.h"
#include "fedlora/device/word_ngram.h"
#include "fedlora/model/tokenizer.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: capi_keyboard_fixture OUT_DIR\n";
    return 2;
  }
  const fs::path base = fs::path(FEDLORA_SHARED_DIR) / "fixtures/hf-tiny-llama/base";
  const fs::path out = argv[1];
  fs::remove_all(out);
  if (!fs::exists(base / "config.json")) {
    std::cout << "no " << base << ": nothing written (CApiKeyboardTest skips)\n";
    return 0;
  }
  fs::create_directories(out);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) {
    fs::copy_file(base / f, out / f);
  }
  auto tok = fedlora::model::Tokenizer::Load((out / "tokenizer.model").string(), 1, 2);
  if (!tok.ok()) {
    std::cerr << tok.status() << "\n";
    return 1;
  }
  fedlora::device::WordNgram pub;
  pub.AddLines(**tok, fedlora::device::KeyboardVocab::FromTokenizer(**tok),
               {"see you at the station later", "meet me at the park tonight",
                "call me when you are at the station", "see you at the other place"});
  const auto written = fedlora::WriteFileAtomic(
      (out / fedlora::device::PersonalKeyboard::kPublicNgramFile).string(), pub.Serialize());
  if (!written.ok()) {
    std::cerr << written << "\n";
    return 1;
  }
  std::cout << "wrote " << out << "\n";
  return 0;
}
