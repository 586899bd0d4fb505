// fedlora compress --model DIR --out DIR --method int8|rtn|nf4|gptq|caldera [--bits B] ...
#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/device/residual_adapter.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/base_identity.h"
#include "text_input.h"

namespace fedlora::cli {

void RegisterCommand_compress(CLI::App& app) {
  struct Opts {
    std::string model, out, calib;
    compress::CompressOptions c;
    int64_t calib_tokens = 8192;
    int lora_rank = 0;
    double lora_alpha = 0;
    std::vector<std::string> lora_targets = {"q_proj", "v_proj"};
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
      "  fedlora compress --model base --out base-24 --method rtn --bits 4 --prune 2:4\n"
      "  fedlora compress --model base --out base-q2 --method rtn --bits 2 --lora-init-rank 8\n"
      "  fedlora train --model base-q2 --init-adapter base-q2/lora_init --data my.txt --out me");
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
  cmd->add_option("--lora-init-rank", o->lora_rank,
                  "also write <out>/lora_init/: a PEFT LoRA adapter of this rank initialised from "
                  "the top singular directions of what compression lost (LoftQ-style); train "
                  "from it with --init-adapter")
      ->capture_default_str()->check(AtLeast(0));
  cmd->add_option("--lora-alpha", o->lora_alpha, "its LoRA alpha (0 = 2 x rank)")
      ->capture_default_str();
  cmd->add_option("--lora-targets", o->lora_targets, "its projections")->capture_default_str();
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
    // The LoRA init's settings are checked before any work.
    adapters::LoraConfig lc;
    lc.rank = std::max(o->lora_rank, 1);
    lc.alpha = o->lora_alpha > 0 ? o->lora_alpha : 2.0 * lc.rank;
    lc.targets.clear();
    for (const auto& t : o->lora_targets) {
      model::Proj p;
      if (!model::ParseProj(t, &p)) {
        return (void)Fail(absl::InvalidArgumentError(
            "unknown --lora-targets entry '" + t +
            "' (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"));
      }
      lc.targets.push_back(p);
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
      nlohmann::json lora_init;
      if (o->lora_rank > 0) {
        auto adapter = device::ResidualAdapter(o->model, *rt->model, lc);
        if (!adapter.ok()) return (void)Fail(adapter.status());
        const std::string dir = (fs::path(o->out) / "lora_init").string();
        if (auto st = adapter->SavePeft(dir); !st.ok()) return (void)Fail(st);
        if (auto st = device::RecordAdapterBase(dir, o->out); !st.ok()) return (void)Fail(st);
        lora_init = {{"dir", dir}, {"rank", lc.rank}, {"alpha", lc.alpha}};
      }
      const int64_t file_bytes =
          static_cast<int64_t>(fs::file_size(fs::path(o->out) / "model.safetensors"));
      const int64_t resident = compress::ResidentWeightBytes(*rt->model);
      if (o->json) {
        nlohmann::json j = report->ToJson();
        j["out"] = o->out;
        j["file_bytes"] = file_bytes;
        j["resident_weight_bytes"] = resident;
        if (!lora_init.is_null()) j["lora_init"] = lora_init;
        return PrintJson(j);
      }
      std::printf(
          "%s: %s, %.3f bits per weight over %lld projection weights (everything counted)\n"
          "model.safetensors %lld bytes, resident weights %lld bytes, %.1f s\n",
          o->out.c_str(), o->c.method.c_str(), report->bits_per_weight,
          static_cast<long long>(report->linear_params), static_cast<long long>(file_bytes),
          static_cast<long long>(resident), report->seconds);
      if (!lora_init.is_null()) {
        std::printf("LoRA init from the residual (rank %d): %s\n", o->lora_rank,
                    lora_init["dir"].get<std::string>().c_str());
      }
    } catch (const c10::Error& e) {
      return (void)Fail(
          absl::InternalError(absl::StrCat("compress: ", e.what_without_backtrace())));
    }
  });
}

}  // namespace fedlora::cli
