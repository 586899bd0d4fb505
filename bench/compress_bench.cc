// Compressed base models: for each method, bits per weight (everything counted), file size,
// resident bytes of the loaded weights, WikiText-2 perplexity and next-token top-3 accuracy,
// and the change against float32, and again with int8 arithmetic (fedlora/compress/
// int8_compute.h); then LoRA training tokens/s, losses and peak RSS on a 4-bit base, with its
// own arithmetic and with int8 arithmetic, beside the float32 base (each in its own child
// process, so peaks do not mix; FEDLORA_INT8_COMPUTE decides a --train-child run); and the
// product of one decoded token with a 4-bit weight from its codes against float32.
//   bench_compress [--json] [--model DIR] [--eval-tokens N] [--calib-tokens N]
//                  [--train-steps N] [--shards N] [--methods a,b,...] [--no-train]
//                  [--decode-only]
// Evaluation text: the first --eval-tokens tokens of ../shared/data/wikitext2/valid.txt;
// calibration text: the last --calib-tokens tokens of the same file (disjoint).
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/compress/int8_compute.h"
#include "fedlora/compress/rtn.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/threads.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using fedlora::compress::CompressOptions;

double Secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }
double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}
double RssMb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Args {
  std::string model = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
  std::string text = std::string(FEDLORA_SHARED_DIR) + "/data/wikitext2/valid.txt";
  int64_t eval_tokens = 16384, calib_tokens = 8192, train_steps = 20;
  int shards = 0;  // TrainOptions::shards (0 = one per core, as a device trains)
  std::string methods =
      "float,int8,rtn4,rtn3,rtn2,nf4,gptq4,gptq3,gptq2,caldera2,caldera3,caldera2g128,"
      "caldera3g128,gptq4-2:4";
  bool json = false, train = true, decode_only = false;  // --decode-only: the kernel lines alone
  std::string train_child;  // internal: train on this model dir and print JSON
};

// Mean NLL and top-3 accuracy of next-token prediction over windows of the model's context.
void Evaluate(const fedlora::model::LlamaModel& m, const std::vector<int64_t>& ids, double* nll,
              double* top3) {
  torch::NoGradGuard g;
  const int64_t ctx = std::min<int64_t>(256, m.config().max_position_embeddings);
  double sum = 0, hits = 0;
  int64_t count = 0;
  for (size_t start = 0; start + 1 < ids.size(); start += ctx) {
    const int64_t n = std::min<int64_t>(ctx, ids.size() - start);
    if (n < 2) break;
    torch::Tensor x =
        torch::tensor(std::vector<int64_t>(ids.begin() + start, ids.begin() + start + n),
                      torch::kInt64)
            .unsqueeze(0);
    torch::Tensor logp = at::log_softmax(m.Forward(x), -1)[0].narrow(0, 0, n - 1);
    torch::Tensor target = x[0].narrow(0, 1, n - 1);
    sum -= logp.gather(1, target.unsqueeze(1)).sum().item<double>();
    torch::Tensor top = std::get<1>(logp.topk(3, 1));
    hits += (top == target.unsqueeze(1)).any(1).sum().item<double>();
    count += n - 1;
  }
  *nll = sum / count;
  *top3 = hits / count;
}

CompressOptions MethodOptions(const std::string& name) {
  CompressOptions o;
  o.progress = false;
  o.group = 64;
  std::string base = name;
  if (auto at = name.find('-'); at != std::string::npos) {
    o.prune = name.substr(at + 1);
    base = name.substr(0, at);
  }
  // "<method><bits>[g<group>]", e.g. gptq3, caldera2g128.
  if (auto g = base.find('g', 1); g != std::string::npos && g + 1 < base.size() &&
                                   std::isdigit(static_cast<unsigned char>(base[g + 1]))) {
    o.group = std::stoi(base.substr(g + 1));
    base = base.substr(0, g);
  }
  for (const char* m : {"int8", "rtn", "nf4", "gptq", "caldera"}) {
    if (base.rfind(m, 0) == 0) {
      o.method = m;
      if (base.size() > std::strlen(m)) o.bits = std::stoi(base.substr(std::strlen(m)));
    }
  }
  if (o.method == "caldera") {
    o.rank = 16;
    o.lr_bits = 4;
    o.iterations = 2;
  }
  return o;
}

int TrainChild(const Args& a) {
  const double rss0 = RssMb();
  auto rt = fedlora::device::LoadRuntime(a.train_child);
  if (!rt.ok()) {
    std::fprintf(stderr, "%s\n", rt.status().ToString().c_str());
    return 1;
  }
  const double rss_loaded = RssMb();
  fedlora::adapters::LoraConfig lc;
  lc.rank = 8;
  auto adapter = fedlora::adapters::LoraAdapter::Create(rt->model->config(), lc, 1);
  if (!adapter.ok() || !adapter->Attach(*rt->model).ok()) return 1;
  adapter->SetTrainable(true);
  std::string text = ReadAll(a.text).substr(0, 400000);
  auto windows = fedlora::device::MakeWindows(*rt->tokenizer, {text}, 128);
  fedlora::device::TrainOptions to;
  to.batch_size = 4;
  to.max_steps = a.train_steps;
  to.shards = a.shards;
  auto stats = fedlora::device::Train(*rt->model, adapter->Parameters(), windows, to);
  if (!stats.ok()) return 1;
  bool int8 = false;
  for (const auto& layer : rt->model->layers) {
    int8 |= dynamic_cast<const fedlora::compress::Int8ComputeWeight*>(
                layer.proj[0].frozen.get()) != nullptr;
  }
  nlohmann::json j = {
      {"tokens_per_second", stats->tokens / stats->seconds},
      {"steps", stats->steps},
      {"int8_arithmetic", int8},
      {"first_loss", stats->first_loss},
      {"last_loss", stats->last_loss},
      {"mean_loss", stats->mean_loss},
      {"rss_start_mb", rss0},
      {"rss_after_load_mb", rss_loaded},
      {"peak_rss_mb", PeakRssMb()},
      {"resident_weight_bytes", fedlora::compress::ResidentWeightBytes(*rt->model)}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

// Decoding a token: y = x W^T for 1 and 4 rows of x at the 30M config's projection shapes,
// float32 against 4-bit RTN (group 64) from the codes (RtnWeight::Apply) and expanded first
// (Dense() then the BLAS, what every product did before). Microseconds per product, best of 7
// runs of 50.
nlohmann::json DecodeLines(bool json) {
  nlohmann::json lines = nlohmann::json::array();
  for (auto [out, in] : {std::pair<int64_t, int64_t>{1376, 512}, {512, 1376}}) {
    torch::Tensor w = torch::randn({out, in}) * 0.05;
    auto q = fedlora::compress::RtnWeight::Quantize(w, 4, 64);
    if (!q.ok()) continue;
    for (int64_t rows : {1, 4}) {
      torch::Tensor x = torch::randn({rows, in});
      auto time_us = [&](const std::function<torch::Tensor()>& f) {
        double best = 1e30;
        for (int rep = 0; rep < 7; ++rep) {
          auto t0 = std::chrono::steady_clock::now();
          for (int k = 0; k < 50; ++k) f();
          best = std::min(best, Secs(t0) / 50);
        }
        return best * 1e6;
      };
      const double f32 = time_us([&] { return at::linear(x, w); });
      const double fused = time_us([&] { return (*q)->Apply(x); });
      const double expand = time_us([&] { return at::linear(x, (*q)->Dense()); });
      lines.push_back({{"shape", {out, in}}, {"rows", rows}, {"float32_us", f32},
                       {"rtn4_from_codes_us", fused}, {"rtn4_expanded_us", expand},
                       {"rtn4_speedup_vs_float32", f32 / fused}});
      if (!json) {
        std::printf("decode %4lldx%-4lld rows %lld: float32 %7.1f us, 4-bit from codes %7.1f us "
                    "(%.2fx), 4-bit expanded %7.1f us\n",
                    static_cast<long long>(out), static_cast<long long>(in),
                    static_cast<long long>(rows), f32, fused, f32 / fused, expand);
      }
    }
  }
  return lines;
}

// Trains in a child process (its own peak RSS); `int8` sets FEDLORA_INT8_COMPUTE for it.
// One projection's product as training runs it inside a shard (one thread): float32
// (OpenBLAS) against int8 arithmetic (Int8ComputeWeight: quantizing the rows, oneDNN's
// matmul, scaling), forward x W^T and input gradient dy W, at the 25.7M base's shapes with
// 256 and 512 rows. GFLOP/s counted as 2 M K N over the whole call, best of 9 runs of 10.
nlohmann::json Int8KernelLines(bool json) {
  fedlora::model::ScopedBlasThreads one(1);
  nlohmann::json lines = nlohmann::json::array();
  for (auto [out, in] : {std::pair<int64_t, int64_t>{512, 512}, {1368, 512}, {512, 1368}}) {
    auto q = fedlora::compress::RtnWeight::Quantize(torch::randn({out, in}) * 0.05, 4, 64);
    if (!q.ok()) continue;
    fedlora::compress::Int8ComputeWeight w8(*q);
    torch::Tensor dense = (*q)->Dense();
    for (int64_t rows : {256, 512}) {
      torch::Tensor x = torch::randn({rows, in}), dy = torch::randn({rows, out});
      auto gflops = [&](const std::function<torch::Tensor()>& f) {
        double best = 1e30;
        f();
        for (int rep = 0; rep < 9; ++rep) {
          auto t0 = std::chrono::steady_clock::now();
          for (int k = 0; k < 10; ++k) f();
          best = std::min(best, Secs(t0) / 10);
        }
        return 2.0 * rows * in * out / best / 1e9;
      };
      nlohmann::json l = {
          {"shape", {out, in}},
          {"rows", rows},
          {"float32_forward_gflops", gflops([&] { return at::linear(x, dense); })},
          {"int8_forward_gflops", gflops([&] { return w8.Apply(x); })},
          {"float32_input_grad_gflops", gflops([&] { return at::matmul(dy, dense); })},
          {"int8_input_grad_gflops", gflops([&] { return w8.ApplyTransposed(dy); })}};
      lines.push_back(l);
      if (!json) {
        std::printf("int8 kernel %4lldx%-4lld rows %lld: forward %6.1f -> %6.1f GFLOP/s, input "
                    "gradient %6.1f -> %6.1f GFLOP/s (one thread, float32 -> int8)\n",
                    static_cast<long long>(out), static_cast<long long>(in),
                    static_cast<long long>(rows), l["float32_forward_gflops"].get<double>(),
                    l["int8_forward_gflops"].get<double>(),
                    l["float32_input_grad_gflops"].get<double>(),
                    l["int8_input_grad_gflops"].get<double>());
      }
    }
  }
  return lines;
}

nlohmann::json RunChild(const std::string& self, const Args& a, const std::string& dir,
                        const std::string& int8 = "off") {
  std::string cmd = "FEDLORA_INT8_COMPUTE=" + int8 + " " + self + " --train-child '" + dir +
                    "' --train-steps " +
                    std::to_string(a.train_steps) + " --shards " + std::to_string(a.shards) +
                    " --text '" + a.text + "'";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
  if (p != nullptr) pclose(p);
  auto j = nlohmann::json::parse(out, nullptr, false);
  return j.is_discarded() ? nlohmann::json{{"error", out}} : j;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (s == "--json")
      a.json = true;
    else if (s == "--no-train")
      a.train = false;
    else if (s == "--model")
      a.model = next();
    else if (s == "--text")
      a.text = next();
    else if (s == "--eval-tokens")
      a.eval_tokens = std::stoll(next());
    else if (s == "--calib-tokens")
      a.calib_tokens = std::stoll(next());
    else if (s == "--train-steps")
      a.train_steps = std::stoll(next());
    else if (s == "--methods")
      a.methods = next();
    else if (s == "--decode-only")
      a.decode_only = true;
    else if (s == "--shards")
      a.shards = static_cast<int>(std::stoll(next()));
    else if (s == "--train-child")
      a.train_child = next();
    else {
      std::fprintf(stderr, "unknown flag %s\n", s.c_str());
      return 2;
    }
  }
  fedlora::model::SelectBlasCore();  // float32 on the CPU's own OpenBLAS kernels
  if (!a.train_child.empty()) return TrainChild(a);
  // The formats' table is their own arithmetic; int8 arithmetic is a column of its own.
  setenv("FEDLORA_INT8_COMPUTE", "off", 1);
  if (a.decode_only) {
    nlohmann::json lines = {{"decode", DecodeLines(a.json)},
                            {"int8_kernel", Int8KernelLines(a.json)},
                            {"int8_isa", fedlora::compress::Int8ComputeIsa()}};
    if (a.json) std::printf("%s\n", lines.dump(1).c_str());
    return 0;
  }
  auto base = fedlora::device::LoadRuntime(a.model);
  if (!base.ok()) {
    std::fprintf(stderr, "%s\n", base.status().ToString().c_str());
    return 1;
  }
  std::vector<int64_t> all = base->tokenizer->EncodeWithBos(ReadAll(a.text));
  std::vector<int64_t> eval(all.begin(),
                            all.begin() + std::min<size_t>(all.size() / 2, a.eval_tokens));
  std::vector<int64_t> calib(all.end() - std::min<size_t>(all.size() / 2, a.calib_tokens),
                             all.end());
  const std::string tmp =
      (fs::temp_directory_path() / ("bench_compress_" + std::to_string(getpid()))).string();
  fs::create_directories(tmp);
  nlohmann::json rows = nlohmann::json::array();
  double float_nll = 0;
  for (const std::string& name : std::vector<std::string>(absl::StrSplit(a.methods, ','))) {
    auto t0 = Clock::now();
    nlohmann::json row = {{"method", name}};
    std::string dir = a.model;
    if (name != "float") {
      auto rt = fedlora::device::LoadRuntime(a.model);
      CompressOptions o = MethodOptions(name);
      if (o.method == "gptq" || o.method == "caldera" || o.prune == "wanda") o.calib_ids = calib;
      auto report = fedlora::compress::CompressModel(*rt->model, o);
      if (!report.ok()) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), report.status().ToString().c_str());
        return 1;
      }
      dir = tmp + "/" + name;
      auto s =
          fedlora::compress::SaveCompressedModel(*rt->model, a.model, dir, {{"method", o.method}});
      if (!s.ok()) return 1;
      row["bits_per_weight"] = report->bits_per_weight;
      row["compress_seconds"] = report->seconds;
    } else {
      row["bits_per_weight"] = 32.0;
    }
    auto m = fedlora::device::LoadRuntime(dir);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
      return 1;
    }
    row["file_bytes"] = static_cast<int64_t>(fs::file_size(fs::path(dir) / "model.safetensors"));
    row["resident_weight_bytes"] = fedlora::compress::ResidentWeightBytes(*m->model);
    double nll = 0, top3 = 0;
    Evaluate(*m->model, eval, &nll, &top3);
    if (name == "float") float_nll = nll;
    row["perplexity"] = std::exp(nll);
    row["top3"] = top3;
    row["perplexity_change_pct"] = float_nll != 0 ? 100.0 * (std::exp(nll - float_nll) - 1) : 0.0;
    if (name != "float" && fedlora::compress::UseInt8Compute(*m->model) > 0) {
      double nll8 = 0, top3_8 = 0;
      Evaluate(*m->model, eval, &nll8, &top3_8);
      row["perplexity_int8_arithmetic"] = std::exp(nll8);
      row["top3_int8_arithmetic"] = top3_8;
      if (!a.json) {
        std::printf("%-12s with int8 arithmetic: ppl %9.3f (%+6.2f%% against its own)  top3 %.4f\n",
                    name.c_str(), std::exp(nll8), 100.0 * (std::exp(nll8 - nll) - 1), top3_8);
      }
    }
    row["seconds"] = Secs(t0);
    rows.push_back(row);
    if (!a.json) {
      std::printf("%-12s %6.3f bits  file %9lld  resident %9lld  ppl %9.3f (%+6.2f%%)  top3 %.4f\n",
                  name.c_str(), row["bits_per_weight"].get<double>(),
                  static_cast<long long>(row["file_bytes"].get<int64_t>()),
                  static_cast<long long>(row["resident_weight_bytes"].get<int64_t>()),
                  row["perplexity"].get<double>(), row["perplexity_change_pct"].get<double>(),
                  top3);
      std::fflush(stdout);
    }
  }
  nlohmann::json out = {{"model", a.model},
                        {"eval_tokens", eval.size()},
                        {"calib_tokens", calib.size()},
                        {"methods", rows}};
  out["decode"] = DecodeLines(a.json);
  out["int8_kernel"] = Int8KernelLines(a.json);
  out["int8_isa"] = fedlora::compress::Int8ComputeIsa();
  if (a.train) {
    const std::string self = fs::canonical("/proc/self/exe").string();
    if (!fs::exists(tmp + "/rtn4")) {
      auto rt = fedlora::device::LoadRuntime(a.model);
      CompressOptions o = MethodOptions("rtn4");
      if (!fedlora::compress::CompressModel(*rt->model, o).ok()) return 1;
      if (!fedlora::compress::SaveCompressedModel(*rt->model, a.model, tmp + "/rtn4", {}).ok())
        return 1;
    }
    nlohmann::json f = RunChild(self, a, a.model), q = RunChild(self, a, tmp + "/rtn4"),
                   q8 = RunChild(self, a, tmp + "/rtn4", "on");
    out["train"] = {{"float32", f}, {"rtn4", q}, {"rtn4_int8", q8},
                    {"int8_isa", fedlora::compress::Int8ComputeIsa()}};
    if (f.contains("tokens_per_second") && q.contains("tokens_per_second") &&
        q8.contains("tokens_per_second")) {
      out["train"]["speed_ratio"] =
          q["tokens_per_second"].get<double>() / f["tokens_per_second"].get<double>();
      out["train"]["int8_speed_ratio"] =
          q8["tokens_per_second"].get<double>() / f["tokens_per_second"].get<double>();
      out["train"]["weight_memory_ratio"] =
          q["resident_weight_bytes"].get<double>() / f["resident_weight_bytes"].get<double>();
    }
    if (!a.json) std::printf("train %s\n", out["train"].dump(1).c_str());
  }
  fs::remove_all(tmp);
  if (a.json) std::printf("%s\n", out.dump(1).c_str());
  return 0;
}
