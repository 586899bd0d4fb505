// The same first use from C++ (RAII over the C API), built against an installed fedlora.
// Usage: consumer_cxx MODEL_DIR STATE_DIR
#include <fedlora.h>

#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Close {
  void operator()(fedlora_runtime* rt) const { fedlora_runtime_close(rt); }
};
using Runtime = std::unique_ptr<fedlora_runtime, Close>;

void Check(int status, const char* what) {
  if (status != FEDLORA_OK) {
    throw std::runtime_error(std::string(what) + ": " + fedlora_status_name(status) + ": " +
                             fedlora_last_error());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " MODEL_DIR STATE_DIR\n";
    return 2;
  }
  try {
    fedlora_config cfg;
    fedlora_config_init(&cfg);
    cfg.model_dir = argv[1];
    cfg.state_dir = argv[2];
    cfg.threads = 1;
    fedlora_runtime* raw = nullptr;
    Check(fedlora_runtime_open(&cfg, &raw), "open");
    Runtime rt(raw);
    std::vector<fedlora_suggestion> strip(3);
    int n = 0;
    Check(fedlora_suggest(rt.get(), "The", 3, strip.data(), &n), "suggest");
    if (n < 1) throw std::runtime_error("suggest: no words");
    std::cout << "fedlora " << fedlora_version() << " (C++): " << n << " suggestions, first \""
              << strip[0].word << "\"\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
