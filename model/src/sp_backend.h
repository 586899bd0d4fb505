// Access to libsentencepiece through an isolated plugin.
//
// Debian's libsentencepiece.so embeds and exports its own copy of protobuf-lite. Linked into a
// process that also loads libprotobuf (gRPC, libtorch), one copy's symbols interpose the
// other's and the process crashes in static initialisation. So sentencepiece lives in a small
// plugin, libfedlora_sp.so, loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND): it and its
// bundled protobuf resolve their own symbols first and never enter the global scope.
// Training a tokenizer is not done in-process: with DEEPBIND the trainer's logging reaches
// libstdc++'s own (never initialised) std::cerr instead of the executable's copy-relocated
// one, so `spm_train` runs as a child process (see tokenizer.cc).
#ifndef FEDLORA_MODEL_SRC_SP_BACKEND_H_
#define FEDLORA_MODEL_SRC_SP_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

namespace fedlora::model::internal {

// One loaded sentencepiece model (implemented in the plugin).
class SpProcessor {
 public:
  virtual ~SpProcessor() = default;
  virtual std::vector<int> Encode(const std::string& text) const = 0;
  virtual std::string Decode(const std::vector<int>& ids) const = 0;
  virtual std::string IdToPiece(int id) const = 0;
  virtual int PieceSize() const = 0;
  virtual bool IsSpecial(int id) const = 0;
};

// The plugin's entry points.
class SpModule {
 public:
  virtual ~SpModule() = default;
  // nullptr and *error set on failure.
  virtual std::unique_ptr<SpProcessor> Load(const std::string& path, std::string* error) = 0;
};

// Loads the plugin once (thread-safe); nullptr and *error (with a hint) if it cannot be found.
// Searched: $FEDLORA_SP_PLUGIN, the executable's directory, the build's output directory.
SpModule* GetSpModule(std::string* error);

}  // namespace fedlora::model::internal

extern "C" fedlora::model::internal::SpModule* fedlora_sp_module();

#endif  // FEDLORA_MODEL_SRC_SP_BACKEND_H_
