#include "sp_backend.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace fedlora::model::internal {
namespace {

std::string ExeDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

// The folder of the binary this code is in: the executable, or libfedlora.so inside an app.
std::string CodeDir() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&CodeDir), &info) == 0 || info.dli_fname == nullptr) return "";
  return std::filesystem::path(info.dli_fname).parent_path().string();
}

}  // namespace

SpModule* GetSpModule(std::string* error) {
  static std::once_flag once;
  static SpModule* module = nullptr;
  static std::string load_error;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("FEDLORA_SP_PLUGIN")) candidates.push_back(env);
    if (const std::string dir = CodeDir(); !dir.empty()) {
      candidates.push_back(dir + "/libfedlora_sp.so");
      candidates.push_back(dir + "/fedlora/libfedlora_sp.so");  // installed libfedlora.so
    }
    candidates.push_back(ExeDir() + "/libfedlora_sp.so");
#ifdef FEDLORA_SP_PLUGIN_EXE_RELDIR  // the installed CLI: <bindir>/<reldir> = <libdir>/fedlora
    candidates.push_back(ExeDir() + "/" FEDLORA_SP_PLUGIN_EXE_RELDIR "/libfedlora_sp.so");
#endif
    candidates.push_back(FEDLORA_SP_PLUGIN_BUILD_PATH);
    for (const auto& path : candidates) {
      if (!std::filesystem::exists(path)) continue;
#ifdef RTLD_DEEPBIND
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#else  // Android's bionic and Apple's dyld have no DEEPBIND (docs/capi.md, cross-building)
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
      if (handle == nullptr) {
        load_error += std::string(dlerror()) + "; ";
        continue;
      }
      auto fn = reinterpret_cast<SpModule* (*)()>(dlsym(handle, "fedlora_sp_module"));
      if (fn == nullptr) {
        load_error += path + ": no fedlora_sp_module symbol; ";
        continue;
      }
      module = fn();
      return;
    }
    load_error += "libfedlora_sp.so not found next to the executable or libfedlora.so, or at " +
                  std::string(FEDLORA_SP_PLUGIN_BUILD_PATH) +
                  " (hint: build the fedlora_sp target, or set FEDLORA_SP_PLUGIN to its path)";
  });
  if (module == nullptr && error != nullptr) *error = load_error;
  return module;
}

}  // namespace fedlora::model::internal
