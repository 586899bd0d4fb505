// fedlora_runtime_open/close, suggest, observe, forget and local training (include/fedlora.h).
#include "capi_runtime.h"

#include <ctime>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "capi_lifetime.h"
#include "capi_status.h"
#include "fedlora/common/random.h"
#include "fedlora/device/device_conditions.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/personal_adapter.h"
#include "fedlora/device/release_install.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/model/threads.h"
#include "fedlora/secagg/secret.h"

namespace fs = std::filesystem;
using fedlora::capi::FromStatus;
using fedlora::capi::Guarded;
using fedlora::capi::SetError;

absl::Status fedlora_runtime::AttachAll() {
  if (attached) return absl::OkStatus();
  suggest_state.Clear();
  for (auto* a : {release.get(), personal.get()}) {
    if (a == nullptr) continue;
    if (auto s = a->Attach(*rt.model); !s.ok()) {
      DetachAll();
      return s;
    }
  }
  attached = true;
  return absl::OkStatus();
}

void fedlora_runtime::DetachAll() {
  suggest_state.Clear();
  // Detach tolerates an adapter that is not attached.
  for (auto* a : {personal.get(), release.get()}) {
    if (a != nullptr) a->Detach(*rt.model);
  }
  attached = false;
}

absl::Status fedlora_runtime::LoadRelease() {
  auto state = fedlora::device::ReadReleaseState(state_dir);
  if (!state.ok()) return state.status();
  release.reset();
  release_version = 0;
  if (!state->current) return absl::OkStatus();
  auto adapter = fedlora::adapters::LoraAdapter::LoadPeft(state->current->dir + "/adapter");
  if (!adapter.ok()) return adapter.status();
  release = std::make_unique<fedlora::adapters::LoraAdapter>(std::move(*adapter));
  release_version = state->current->version;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> fedlora_runtime::StoredTexts() {
  auto entries = store->ReadAll(std::time(nullptr));
  if (!entries.ok()) return entries.status();
  std::vector<std::string> texts;
  for (auto& e : *entries) texts.push_back(std::move(e.text));
  if (texts.empty()) {
    return absl::FailedPreconditionError(
        "nothing observed yet: the local text store is empty (hint: fedlora_observe what the "
        "user types first)");
  }
  return texts;
}

absl::StatusOr<std::string> fedlora_runtime::BaseSha256() {
  if (base_sha256.empty()) {
    auto sha = fedlora::io::ModelSha256(model_dir);
    if (!sha.ok()) return sha.status();
    base_sha256 = *sha;
  }
  return base_sha256;
}

namespace {

int Open(const fedlora_config* in, fedlora_runtime** out) {
  if (out == nullptr) return SetError(FEDLORA_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  fedlora_config c;
  int code = FEDLORA_OK;
  if (!fedlora::capi::ReadStruct(in, fedlora_config_init, "fedlora_config", &c, &code)) return code;
  if (c.model_dir == nullptr || *c.model_dir == '\0') {
    return SetError(FEDLORA_INVALID_ARGUMENT,
                    "fedlora_config.model_dir is empty (hint: the base model's folder)");
  }
  if (c.state_dir == nullptr || *c.state_dir == '\0') {
    return SetError(FEDLORA_INVALID_ARGUMENT,
                    "fedlora_config.state_dir is empty (hint: a folder private to the app)");
  }
  if (c.threads < 0 || c.retention_days < 0 || c.max_text_bytes < 0) {
    return SetError(FEDLORA_INVALID_ARGUMENT,
                    "fedlora_config: threads, retention_days and max_text_bytes must be >= 0");
  }
  if (c.store_key != nullptr && c.store_key_len != fedlora::secagg::Secret32::kSize) {
    return SetError(FEDLORA_INVALID_ARGUMENT,
                    absl::StrCat("fedlora_config.store_key_len is ", c.store_key_len,
                                 "; the text store key is 32 bytes"));
  }
  auto rt = std::make_unique<fedlora_runtime>();
  rt->model_dir = c.model_dir;
  rt->state_dir = c.state_dir;
  std::error_code ec;
  fs::create_directories(rt->state_dir, ec);
  if (ec) {
    return SetError(FEDLORA_PERMISSION_DENIED,
                    absl::StrCat("cannot create the state folder ", rt->state_dir, ": ",
                                 ec.message()));
  }
  fs::permissions(rt->state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  fedlora::model::ConfigureThreads({c.threads, 1});  // also picks OpenBLAS's kernels
  auto loaded = fedlora::device::LoadRuntime(rt->model_dir);
  if (!loaded.ok()) return FromStatus(loaded.status());
  rt->rt = std::move(*loaded);
  if (auto s = rt->LoadRelease(); !s.ok()) return FromStatus(s);
  const std::string personal_dir = fedlora::device::PersonalAdapterDir(rt->state_dir);
  if (fs::exists(personal_dir + "/adapter_config.json")) {
    auto p = fedlora::adapters::LoraAdapter::LoadPeft(personal_dir);
    if (!p.ok()) return FromStatus(p.status());
    rt->personal = std::make_unique<fedlora::adapters::LoraAdapter>(std::move(*p));
  }
  if (auto s = rt->AttachAll(); !s.ok()) return FromStatus(s);
  rt->store_options = fedlora::device::TextStoreOptions::ForState(rt->state_dir);
  if (c.store_key != nullptr) rt->store_options.key.emplace(c.store_key);
  rt->store_options.retention_days = c.retention_days;
  rt->store_options.max_bytes = c.max_text_bytes;
  auto store = fedlora::device::TextStore::Open(rt->store_options, std::time(nullptr));
  if (!store.ok()) return FromStatus(store.status());
  rt->store.emplace(std::move(*store));
  auto keyboard = fedlora::device::PersonalKeyboard::Load(rt->model_dir, *rt->rt.tokenizer);
  if (!keyboard.ok()) return FromStatus(keyboard.status());
  if (keyboard->has_value()) {
    rt->keyboard.emplace(std::move(**keyboard));
    auto entries = rt->store->ReadAll(std::time(nullptr));
    if (!entries.ok()) return FromStatus(entries.status());
    for (const auto& e : *entries) rt->keyboard->Observe(e.text);
  }
  if (c.trusted_release_keys != nullptr) {
    std::vector<std::string> files;
    for (const char* const* k = c.trusted_release_keys; *k != nullptr; ++k) files.push_back(*k);
    if (auto s = rt->trust.AddFiles(files); !s.ok()) return FromStatus(s);
    rt->has_trust = !files.empty();
  }
  if (auto s = fedlora::capi::ApplyReleaseConfig(c, rt.get()); !s.ok()) return FromStatus(s);
  fedlora::capi::RegisterRuntime(rt.get());
  *out = rt.release();
  return FEDLORA_OK;
}

}  // namespace

extern "C" {

int fedlora_runtime_open(const fedlora_config* config, fedlora_runtime** out) {
  return Guarded("fedlora_runtime_open", [&]() -> int { return Open(config, out); });
}

int fedlora_runtime_close(fedlora_runtime* rt) {
  if (rt == nullptr) return FEDLORA_OK;
  return Guarded("fedlora_runtime_close", [&]() -> int {
    // Refuses new calls and waits for those in progress (including any waiting for the
    // runtime's lock) before anything is freed.
    if (int c = fedlora::capi::UnregisterRuntime(rt); c != FEDLORA_OK) return c;
    rt->store_options.key.reset();  // Secret32 wipes its bytes
    delete rt;
    return FEDLORA_OK;
  });
}

int fedlora_runtime_release(fedlora_runtime* rt, uint64_t* version) {
  return Guarded("fedlora_runtime_release", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    if (version == nullptr) return SetError(FEDLORA_INVALID_ARGUMENT, "version is NULL");
    std::lock_guard<std::mutex> lock(rt->mu);
    *version = rt->release_version;
    return FEDLORA_OK;
  });
}

int fedlora_suggest(fedlora_runtime* rt, const char* prefix, int k, fedlora_suggestion* out,
                    int* n) {
  return Guarded("fedlora_suggest", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    if (prefix == nullptr || out == nullptr || n == nullptr) {
      return SetError(FEDLORA_INVALID_ARGUMENT, "prefix, out and n must not be NULL");
    }
    if (k < 1 || k > 16) {
      return SetError(FEDLORA_INVALID_ARGUMENT,
                      absl::StrCat("k is ", k, "; allowed: 1..16 (a suggestion strip)"));
    }
    *n = 0;
    std::lock_guard<std::mutex> lock(rt->mu);
    if (!rt->attached) {  // a failed re-attach earlier (detached_scope.h): try again
      if (auto s = rt->AttachAll(); !s.ok()) return FromStatus(s);
    }
    auto words = rt->keyboard.has_value()
                     ? fedlora::device::SuggestLexiconWords(*rt->rt.model, *rt->rt.tokenizer,
                                                            rt->keyboard->Strip(), prefix, k,
                                                            &rt->suggest_state)
                     : fedlora::device::SuggestNextWords(*rt->rt.model, *rt->rt.tokenizer,
                                                         prefix, k, 8, &rt->suggest_state);
    if (!words.ok()) return FromStatus(words.status());
    for (const auto& w : *words) {
      fedlora::capi::CopyUtf8(w.word, out[*n].word, sizeof(out[*n].word));
      out[*n].log_prob = w.log_prob;
      ++*n;
    }
    return FEDLORA_OK;
  });
}

int fedlora_observe(fedlora_runtime* rt, const char* text) {
  return Guarded("fedlora_observe", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    if (text == nullptr) return SetError(FEDLORA_INVALID_ARGUMENT, "text is NULL");
    std::lock_guard<std::mutex> lock(rt->mu);
    if (auto s = rt->store->Append(text, std::time(nullptr)); !s.ok()) return FromStatus(s);
    if (rt->keyboard.has_value()) rt->keyboard->Observe(text);
    return FEDLORA_OK;
  });
}

int fedlora_store_size(fedlora_runtime* rt, int64_t* entries, int64_t* bytes) {
  return Guarded("fedlora_store_size", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    std::lock_guard<std::mutex> lock(rt->mu);
    if (entries != nullptr) *entries = rt->store->entries();
    if (bytes != nullptr) *bytes = rt->store->text_bytes();
    return FEDLORA_OK;
  });
}

int fedlora_forget(fedlora_runtime* rt) {
  return Guarded("fedlora_forget", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    std::lock_guard<std::mutex> lock(rt->mu);
    if (auto s = rt->store->Forget(); !s.ok()) return FromStatus(s);
    if (rt->keyboard.has_value()) rt->keyboard->Reset();  // the personal word counts
    ++rt->forgets;
    rt->DetachAll();
    rt->personal.reset();
    std::error_code ec;
    fs::remove_all(fedlora::device::PersonalAdapterDir(rt->state_dir), ec);
    if (ec) {
      (void)rt->AttachAll();
      return SetError(FEDLORA_INTERNAL, absl::StrCat("the text store is erased, but the personal "
                                                     "adapter could not be removed: ",
                                                     ec.message()));
    }
    if (auto s = rt->AttachAll(); !s.ok()) return FromStatus(s);
    // An empty store again, so that observe keeps working. It writes nothing until the next
    // observe: an app that closes now may open with a new store key (docs/capi.md).
    auto store = fedlora::device::TextStore::Open(rt->store_options, std::time(nullptr));
    if (!store.ok()) return FromStatus(store.status());
    rt->store.emplace(std::move(*store));
    return FEDLORA_OK;
  });
}

int fedlora_train(fedlora_runtime* rt, const fedlora_budget* budget_in,
                  const fedlora_policy* policy_in, fedlora_train_result* out) {
  return Guarded("fedlora_train", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    fedlora_budget budget;
    fedlora_policy policy;
    int code = FEDLORA_OK;
    if (!fedlora::capi::ReadStruct(budget_in, fedlora_budget_init, "fedlora_budget", &budget,
                                   &code) ||
        !fedlora::capi::ReadStruct(policy_in, fedlora_policy_init, "fedlora_policy", &policy,
                                   &code)) {
      return code;
    }
    if (budget.max_steps < 1 || budget.max_seconds < 0) {
      return SetError(FEDLORA_INVALID_ARGUMENT,
                      "fedlora_budget: max_steps must be >= 1 and max_seconds >= 0");
    }
    fedlora::device::ConditionRules rules = fedlora::capi::RulesOf(policy);
    rules.require_unmetered = false;  // local training sends nothing
    const std::string no =
        fedlora::device::ConditionRefusal(rules, fedlora::capi::ConditionsOf(policy));
    if (!no.empty()) {
      return SetError(FEDLORA_REFUSED_BY_POLICY, "not training now: " + no);
    }
    // Training runs on a model of its own (the base and the installed release's adapter, read
    // from disk), so suggestions are not held up; the runtime's lock is taken only to copy
    // the text and to switch to the new personal adapter.
    std::lock_guard<std::mutex> round(rt->round_mu);
    absl::StatusOr<std::vector<std::string>> texts;
    uint64_t forgets = 0;
    {
      std::lock_guard<std::mutex> lock(rt->mu);
      texts = rt->StoredTexts();
      forgets = rt->forgets;
    }
    if (!texts.ok()) return FromStatus(texts.status());
    auto own = fedlora::device::LoadRuntime(rt->model_dir);
    if (!own.ok()) return FromStatus(own.status());
    auto state = fedlora::device::ReadReleaseState(rt->state_dir);
    if (!state.ok()) return FromStatus(state.status());
    // Over the installed release; without one, over a zero adapter (the base alone).
    absl::StatusOr<fedlora::adapters::LoraAdapter> global = absl::NotFoundError("");
    if (state->current) {
      global = fedlora::adapters::LoraAdapter::LoadPeft(state->current->dir + "/adapter");
    } else {
      fedlora::adapters::LoraConfig lc;
      lc.init = fedlora::adapters::LoraConfig::Init::kZero;
      global = fedlora::adapters::LoraAdapter::Create(own->model->config(), lc, 0);
    }
    if (!global.ok()) return FromStatus(global.status());
    fedlora::device::PersonalOptions po;
    po.lora.targets = global->config().targets;
    po.train.max_steps = budget.max_steps;
    po.train.max_seconds = budget.max_seconds;
    fedlora::SecureRandom rng;  // a real device: A's init and the window order
    auto trained = fedlora::device::TrainPersonalAdapter(*own->model, *own->tokenizer, *global,
                                                         *texts, po, rng);
    if (!trained.ok()) return FromStatus(trained.status());
    const fedlora::device::TrainStats stats = trained->stats;
    std::lock_guard<std::mutex> lock(rt->mu);
    if (rt->forgets != forgets) {
      return SetError(FEDLORA_ABORTED,
                      "the text store was forgotten while training: the adapter trained on it "
                      "was discarded (hint: observe and train again)");
    }
    {
      fedlora::capi::DetachedScope bare(rt);  // re-attaches without throwing (detached_scope.h)
      const std::string dir = fedlora::device::PersonalAdapterDir(rt->state_dir);
      if (auto s = trained->adapter.SavePeft(dir); !s.ok()) return FromStatus(s);
      rt->personal =
          std::make_unique<fedlora::adapters::LoraAdapter>(std::move(trained->adapter));
    }  // attached again here, with the new personal adapter
    if (!rt->attached) {
      return SetError(FEDLORA_INTERNAL, "the adapters could not be attached after training");
    }
    fedlora_train_result r;
    fedlora_train_result_init(&r);
    r.steps = static_cast<int>(stats.steps);
    r.first_loss = stats.first_loss;
    r.last_loss = stats.last_loss;
    r.seconds = stats.seconds;
    fedlora::capi::WriteStruct(r, out);
    return FEDLORA_OK;
  });
}

}  // extern "C"
