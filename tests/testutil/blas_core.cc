// Linked into every test executable that links libtorch (tests/CMakeLists.txt): the tests'
// matrix products use the same OpenBLAS kernels as the fedlora binary (model::SelectBlasCore,
// docs/device.md "Threads").
#include "fedlora/model/threads.h"

namespace {
const bool kBlasCoreSelected = [] {
  fedlora::model::SelectBlasCore();
  return true;
}();
}  // namespace
