// fedlora keys new --out KEY: an Ed25519 release key (KEY, PKCS#8 PEM, 0600) and its public
// half (KEY.pub: "ed25519 <hex> <key id>") for devices' trusted keys.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/release.h"

namespace fedlora::cli {

void RegisterCommand_keys(CLI::App& app) {
  auto* parent = GetOrAddSubcommand(app, "keys", "release signing keys");
  struct Opts {
    std::string out;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("new", "create an Ed25519 release key and its .pub");
  cmd->footer(
      "Examples:\n"
      "  fedlora keys new --out release-2026.key     # writes release-2026.key and .key.pub\n"
      "Keep KEY offline; give KEY.pub to devices (--trusted). For a rotation, devices trust the\n"
      "old and the new .pub until every release is signed with the new key.");
  cmd->add_option("--out", o->out, "private key file to create (mode 0600)")->required();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    if (fs::exists(o->out) || fs::exists(o->out + ".pub")) {
      return (void)Fail(absl::AlreadyExistsError(absl::StrCat(
          o->out, " or ", o->out, ".pub exists (hint: a key is never overwritten; pick another "
                                  "--out)")));
    }
    auto key = Ed25519Key::Generate();
    if (!key.ok()) return (void)Fail(key.status());
    if (auto s = key->SavePrivate(o->out); !s.ok()) return (void)Fail(s);
    const std::string pub = PublicKeyFileText(key->PublicRaw());
    if (auto s = WriteFileWithMode(o->out + ".pub", pub, 0644, ExistingFile::kRefuse); !s.ok()) {
      return (void)Fail(s);
    }
    const std::string id = KeyId(key->PublicRaw());
    if (o->json) {
      return PrintJson({{"key", o->out}, {"public_key", o->out + ".pub"}, {"key_id", id}});
    }
    std::printf("key %s (0600)\npublic key %s.pub\nkey id %s\n", o->out.c_str(), o->out.c_str(),
                id.c_str());
  });
}

}  // namespace fedlora::cli
