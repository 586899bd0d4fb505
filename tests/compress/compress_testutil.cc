#include "compress/compress_testutil.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fedlora::compress::testing {

namespace fs = std::filesystem;

std::string FixtureModelDir() {
  std::string d = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
  return fs::exists(d) ? d : "";
}

std::string WikiTextPath() {
  std::string p = std::string(FEDLORA_SHARED_DIR) + "/data/wikitext2/valid.txt";
  return fs::exists(p) ? p : "";
}

std::string WikiTextPrefix(size_t max_bytes) {
  const std::string p = WikiTextPath();
  if (p.empty()) return "";
  std::ifstream in(p);
  std::string text(max_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(max_bytes));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

std::string FreshTempDir(const std::string& tag) {
  fs::path d =
      fs::temp_directory_path() / ("fedlora-compress-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

torch::Tensor TestMatrix(int64_t out, int64_t in, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::Tensor w = at::normal(0.0, 0.05, {out, in}, gen, torch::kFloat);
  torch::Tensor outliers = at::normal(0.0, 0.5, {out, in}, gen, torch::kFloat);
  torch::Tensor pick = at::rand({out, in}, gen, torch::kFloat) < 0.01;
  return torch::where(pick, outliers, w);
}

torch::Tensor TestHessian(int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const int64_t m = 4 * n;
  torch::Tensor z = at::normal(0.0, 1.0, {m, n}, gen, torch::kDouble);
  torch::Tensor mix = at::normal(0.0, 1.0, {n, n}, gen, torch::kDouble) / std::sqrt(double(n));
  torch::Tensor scale = at::rand({n}, gen, torch::kDouble) * 3 + 0.1;
  torch::Tensor x = (z + z.mm(mix)) * scale;
  return x.t().mm(x) / static_cast<double>(m);
}

}  // namespace fedlora::compress::testing
