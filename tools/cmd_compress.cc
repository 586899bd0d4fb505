// fedlora compress --model DIR --out DIR --method int8|rtn|nf4|gptq|caldera [--bits B] ...
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/device/runtime.h"
#include "text_input.h"

namespace fedlora::cli {

void RegisterCommand_compress(CLI::App& app) {
  struct Opts {
    std::string model, out, calib;
    compress::CompressOptions c;
    int64_t calib_tokens = 8192;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "compress",
      "write a compressed copy of a float model directory (packed quantized projections; every "
      "command taking --model accepts it). See docs/compress.md for the formats.");
  cmd->footer(
      "Examples:\n"
      "  fedlora compress --model base --out base-int8 --method int8\n"
      "  fedlora compress --model base --out base-q4 --method rtn --bits 4 --group 64\n"
      "  fedlora compress --model base --out base-gptq3 --method gptq --bits 3 --calib text.txt\n"
      "  fedlora compress --model base --out base-cal --method caldera --bits 2 --rank 16 \\\n"
      "      --calib text.txt --json\n"
      "  fedlora compress --model base --out base-24 --method rtn --bits 4 --prune 2:4");
  cmd->add_option("--model", o->model, "float model directory")->required();
  cmd->add_option("--out", o->out, "output directory (created)")->required();
  cmd->add_option("--method", o->c.method, "int8, rtn, nf4, gptq or caldera")
      ->check(CLI::IsMember({"int8", "rtn", "nf4", "gptq", "caldera"}))
      ->capture_default_str();
  cmd->add_option("--bits", o->c.bits, "bits per code (rtn, gptq, CALDERA's Q): 2..8")
      ->capture_default_str();
  cmd->add_option("--group", o->c.group, "input columns per scale/min group")
      ->capture_default_str();
  cmd->add_option("--rank", o->c.rank, "CALDERA rank k")->capture_default_str();
  cmd->add_option("--factor-bits", o->c.lr_bits, "CALDERA L/R bits: 4 or 8")->capture_default_str();
  cmd->add_option("--iterations", o->c.iterations, "CALDERA alternating iterations")
      ->capture_default_str();
  cmd->add_flag("--hadamard", o->c.hadamard,
                "CALDERA: randomized Hadamard transform of the inputs (incoherence)");
  cmd->add_option("--calib", o->calib, "calibration text file (gptq, caldera, wanda)");
  cmd->add_option("--calib-tokens", o->calib_tokens, "calibration tokens used (from the start)")
      ->capture_default_str();
  cmd->add_option("--prune", o->c.prune, "prune first: magnitude, wanda or 2:4")
      ->check(CLI::IsMember({"magnitude", "wanda", "2:4"}));
  cmd->add_option("--sparsity", o->c.sparsity, "fraction pruned (magnitude, wanda)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON summary");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    if (compress::IsCompressedDir(o->model)) {
      return (void)Fail(absl::InvalidArgumentError(absl::StrCat(
          o->model, " is already compressed (hint: compress the float model it came from)")));
    }
    if (fs::absolute(o->model).lexically_normal() == fs::absolute(o->out).lexically_normal()) {
      return (void)Fail(absl::InvalidArgumentError("--out must differ from --model"));
    }
    auto rt = device::LoadRuntime(o->model);
    if (!rt.ok()) return (void)Fail(rt.status());
    if (!o->calib.empty()) {
      auto text = ReadTextFile(o->calib);
      if (!text.ok()) return (void)Fail(text.status());
      o->c.calib_ids = rt->tokenizer->EncodeWithBos(*text);
      o->c.calib.max_tokens = o->calib_tokens;
    }
    try {
      auto report = compress::CompressModel(*rt->model, o->c);
      if (!report.ok()) return (void)Fail(report.status());
      nlohmann::json options = {{"bits", o->c.bits},
                                {"group", o->c.group},
                                {"rank", o->c.rank},
                                {"factor_bits", o->c.lr_bits},
                                {"iterations", o->c.iterations},
                                {"prune", o->c.prune},
                                {"sparsity", o->c.sparsity},
                                {"calib", o->calib},
                                {"calibration_tokens", report->calibration_tokens}};
      nlohmann::json info = {{"method", o->c.method},
                             {"options", options},
                             {"source", o->model},
                             {"linear_bits_per_weight", report->bits_per_weight}};
      absl::Status s = compress::SaveCompressedModel(*rt->model, o->model, o->out, info);
      if (!s.ok()) return (void)Fail(s);
      const int64_t file_bytes =
          static_cast<int64_t>(fs::file_size(fs::path(o->out) / "model.safetensors"));
      const int64_t resident = compress::ResidentWeightBytes(*rt->model);
      if (o->json) {
        nlohmann::json j = report->ToJson();
        j["out"] = o->out;
        j["file_bytes"] = file_bytes;
        j["resident_weight_bytes"] = resident;
        return PrintJson(j);
      }
      std::printf(
          "%s: %s, %.3f bits per weight over %lld projection weights (everything counted)\n"
          "model.safetensors %lld bytes, resident weights %lld bytes, %.1f s\n",
          o->out.c_str(), o->c.method.c_str(), report->bits_per_weight,
          static_cast<long long>(report->linear_params), static_cast<long long>(file_bytes),
          static_cast<long long>(resident), report->seconds);
    } catch (const c10::Error& e) {
      return (void)Fail(
          absl::InternalError(absl::StrCat("compress: ", e.what_without_backtrace())));
    }
  });
}

}  // namespace fedlora::cli
