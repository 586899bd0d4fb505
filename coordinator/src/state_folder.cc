#include "fedlora/coordinator/state_folder.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/coordinator_config.h"
#include "fedlora/coordinator/demo_pki.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/coordinator/pinned_params.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {
namespace {

// A password in the state folder would sit in a file every tool reads; libpq reads it from
// ~/.pgpass, PGPASSFILE or PGPASSWORD instead.
absl::Status CheckConninfoHasNoPassword(const std::string& conninfo) {
  const bool uri = absl::StartsWith(conninfo, "postgresql://") || absl::StartsWith(conninfo, "postgres://");
  bool has = absl::StrContains(conninfo, "password=");
  if (uri) {
    const auto at = conninfo.find('@');
    const auto userinfo = conninfo.substr(0, at == std::string::npos ? 0 : at);
    has = has || userinfo.find(':', userinfo.find("://") + 3) != std::string::npos;
  }
  if (!has) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "the --store connection string carries a password; it would be written into the state "
      "folder (hint: drop it and use ~/.pgpass, PGPASSFILE or PGPASSWORD)");
}

}  // namespace

absl::StatusOr<std::string> StateStoreConninfo(const std::string& state_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::path(state_dir) / kStoreFile, ec)) return std::string();
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(state_dir + "/" + kStoreFile));
  const std::string conninfo(absl::StripAsciiWhitespace(text));
  if (conninfo.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        state_dir, "/", kStoreFile, " is empty (hint: it names the PostgreSQL database of a "
        "multi-host population; delete it for SQLite in the folder)"));
  }
  return conninfo;
}

absl::StatusOr<std::unique_ptr<Store>> OpenStateStore(const std::string& state_dir,
                                                      const std::optional<StoreFence>& fence) {
  FEDLORA_ASSIGN_OR_RETURN(std::string conninfo, StateStoreConninfo(state_dir));
  if (conninfo.empty()) return OpenSqliteStore(state_dir);
  return OpenPostgresStore(conninfo, fence);
}

absl::StatusOr<StateFolderInfo> CreateStateFolder(const StateFolderSpec& spec) {
  namespace fs = std::filesystem;
  const std::string& dir = spec.state_dir;
  if (fs::exists(fs::path(dir) / "coordinator.json")) {
    return absl::AlreadyExistsError(absl::StrCat(
        dir, " is already a coordinator state folder (hint: `fedlora coordinator run --state ",
        dir, "` resumes it; pick another folder for a new run)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(CoordinatorOptions parsed, CoordinatorOptionsFromJson(spec.config));
  // The recipe must work for this adapter's size before anything is written.
  // Only the method's shared values are summed: the recipe's dimension is theirs.
  FEDLORA_ASSIGN_OR_RETURN(std::vector<size_t> shared,
                           SharedPositions(spec.initial, parsed.lora_method));
  parsed.recipe.dim = shared.size();
  FEDLORA_ASSIGN_OR_RETURN(auto training,
                           FederatedTraining::Create(parsed.recipe, parsed.optimizer,
                                                     Gather(spec.initial.values, shared)));
  StateFolderInfo info;
  FEDLORA_ASSIGN_OR_RETURN(info.epsilon_per_round, training->FirstRoundEpsilon());

  std::unique_ptr<Store> store;
  if (spec.store.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(store, OpenSqliteStore(dir));
  } else {
    FEDLORA_RETURN_IF_ERROR(CheckConninfoHasNoPassword(spec.store));
    FEDLORA_ASSIGN_OR_RETURN(store, OpenPostgresStore(spec.store));
    if (store->LatestAdapter().ok()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "the PostgreSQL database of --store already holds a population (hint: one database "
          "per population: `createdb` another, or point a state folder at this one by writing "
          "its connection string to DIR/", kStoreFile, ")"));
    }
    FEDLORA_RETURN_IF_ERROR(MakeDirs(dir));
    FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(dir + "/" + kStoreFile, spec.store + "\n", 0600,
                                              ExistingFile::kRefuse));
  }
  FEDLORA_ASSIGN_OR_RETURN(auto v1, store->PutInitialAdapter(EncodeAdapterBlob(spec.initial)));
  info.adapter_sha256 = v1.sha256;
  // What the population's epsilon depends on is fixed from now on (pinned_params.h).
  FEDLORA_RETURN_IF_ERROR(PinPrivacyParams(*store, parsed));
  SecureRandom rng;
  std::string id_bytes(8, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(id_bytes.data()), id_bytes.size());
  FEDLORA_RETURN_IF_ERROR(store->PutMeta("coordinator_id", "coord-" + HexEncode(id_bytes)));
  std::vector<std::string> hashes;
  std::string token_file;
  for (int i = 0; i < spec.tokens; ++i) {
    std::string raw(16, '\0');
    rng.Fill(reinterpret_cast<uint8_t*>(raw.data()), raw.size());
    info.tokens.push_back(HexEncode(raw));
    hashes.push_back(HexEncode(Sha256(info.tokens.back())));
    token_file += info.tokens.back() + "\n";
  }
  FEDLORA_RETURN_IF_ERROR(store->AddEnrollmentTokens(hashes));
  info.tokens_file = dir + "/enroll-tokens.txt";
  FEDLORA_RETURN_IF_ERROR(
      WriteFileWithMode(info.tokens_file, token_file, 0600, ExistingFile::kRefuse));
  FEDLORA_RETURN_IF_ERROR(CreateDemoPki(dir + "/tls", spec.tls_names, spec.tls_ips));
  info.ca_pem = dir + "/tls/ca.pem";
  // Multi-host: the leader's credential towards its aggregators (cluster_key.h).
  if (!spec.store.empty()) FEDLORA_RETURN_IF_ERROR(CreateClusterKey(dir));
  // Written last: its presence marks a complete folder. A derived max_cohort is written out.
  nlohmann::json config = spec.config;
  config["max_cohort"] = parsed.recipe.max_cohort;
  FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(dir + "/coordinator.json", config.dump(2) + "\n", 0644,
                                            ExistingFile::kRefuse));
  return info;
}

}  // namespace fedlora::coordinator
