// fedlora device observe|forget: the device's encrypted local text store
// (device/text_store.h): what the user typed, kept on the device for `device run --from-store`.
#include <ctime>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/device/text_store.h"
#include "text_input.h"

namespace fedlora::cli {
namespace {

struct StoreOpts {
  std::string state;
  std::vector<std::string> text, file;
  int64_t retention_days = 30, max_bytes = 4 << 20;
  bool json = false;
};

void AddStoreFlags(CLI::App* cmd, StoreOpts* o) {
  cmd->add_option("--state", o->state, "device state folder; the store is <state>/text")
      ->required();
  cmd->add_flag("--json", o->json, "print one JSON object");
}

}  // namespace

void RegisterCommand_device_store(CLI::App& app) {
  auto* parent =
      GetOrAddSubcommand(app, "device", "a device (phone): enrol, run rounds, install releases");
  auto o = std::make_shared<StoreOpts>();
  auto* observe = parent->add_subcommand(
      "observe", "append what the user typed to the encrypted local store (never sent)");
  observe->footer(
      "Example:\n  fedlora device observe --state phone1 --text \"see you at 6\"\n"
      "  fedlora device observe --state phone1 --file today.txt\n"
      "Then `fedlora device run --from-store` trains on it. AES-256-GCM at rest; the key is "
      "<state>/text.key (mode 0600).");
  AddStoreFlags(observe, o.get());
  observe->add_option("--text", o->text, "a message the user typed (repeatable)");
  observe->add_option("--file", o->file, "messages, one per line (file or directory)");
  observe->add_option("--retention-days", o->retention_days, "drop text older than this (0 = keep)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  observe->add_option("--max-bytes", o->max_bytes, "keep at most this much text, oldest dropped")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  observe->callback([o] {
    std::vector<std::string> lines = o->text;
    if (!o->file.empty()) {
      auto more = ReadTextLines(o->file);
      if (!more.ok()) return (void)Fail(more.status());
      lines.insert(lines.end(), more->begin(), more->end());
    }
    if (lines.empty()) {
      return (void)Fail(absl::InvalidArgumentError(
          "nothing to observe (hint: give --text \"...\" or --file FILE)"));
    }
    device::TextStoreOptions so = device::TextStoreOptions::ForState(o->state);
    so.retention_days = o->retention_days;
    so.max_bytes = o->max_bytes;
    const int64_t now = std::time(nullptr);
    auto store = device::TextStore::Open(so, now);
    if (!store.ok()) return (void)Fail(store.status());
    for (const auto& l : lines) {
      if (l.empty()) continue;
      if (auto st = store->Append(l, now); !st.ok()) return (void)Fail(st);
    }
    if (o->json) {
      return PrintJson({{"entries", store->entries()}, {"text_bytes", store->text_bytes()},
                        {"recovered_bytes", store->recovered_bytes()}, {"path", store->path()}});
    }
    std::printf("stored %zu messages; the store keeps %lld (%lld bytes of text, encrypted) in %s\n",
                lines.size(), static_cast<long long>(store->entries()),
                static_cast<long long>(store->text_bytes()), store->path().c_str());
  });

  auto* forget = parent->add_subcommand(
      "forget", "erase the local text store and its key (copies of the file stay unreadable)");
  forget->footer("Example:\n  fedlora device forget --state phone1");
  AddStoreFlags(forget, o.get());
  forget->callback([o] {
    // Erased without opening: a store whose key is lost or whose file is damaged goes too.
    if (auto st = device::TextStore::Erase(device::TextStoreOptions::ForState(o->state));
        !st.ok()) {
      return (void)Fail(st);
    }
    if (o->json) return PrintJson({{"forgotten", true}});
    std::printf("forgot the local text: %s/text and its key are erased\n", o->state.c_str());
  });
}

}  // namespace fedlora::cli
