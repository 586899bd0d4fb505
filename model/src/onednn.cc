#include "fedlora/model/onednn.h"

#include <cstdint>
#include <vector>

namespace fedlora::model::onednn {
namespace {

struct Workspace {
  std::unique_ptr<dnnl::stream> stream;
  std::unique_ptr<uint8_t[]> scratch;
  size_t size = 0;
};

// Idle workspaces; at most as many as products ever ran at once.
class WorkspacePool {
 public:
  std::unique_ptr<Workspace> Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        std::unique_ptr<Workspace> w = std::move(free_.back());
        free_.pop_back();
        return w;
      }
    }
    auto w = std::make_unique<Workspace>();
    w->stream = std::make_unique<dnnl::stream>(Engine());
    return w;
  }
  void Give(std::unique_ptr<Workspace> w) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(w));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Workspace>> free_;
};

WorkspacePool& Pool() {
  static WorkspacePool* pool = new WorkspacePool;  // never destroyed: used until exit
  return *pool;
}

}  // namespace

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

void Execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad,
             std::unordered_map<int, dnnl::memory> args) {
  OneThread one;
  std::unique_ptr<Workspace> ws = Pool().Take();
  const size_t need = scratchpad.get_size();
  if (ws->size < need) {
    ws->scratch.reset(new uint8_t[need]);  // uninitialized: oneDNN writes it before reading
    ws->size = need;
  }
  args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, Engine(), ws->scratch.get()));
  prim.execute(*ws->stream, args);
  ws->stream->wait();
  Pool().Give(std::move(ws));  // on a throw above, the workspace is dropped instead
}

}  // namespace fedlora::model::onednn
