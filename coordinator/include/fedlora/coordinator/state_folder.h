// A new coordinator state folder (what `fedlora coordinator init` and `fedlora sim --transport
// grpc` create): the store with the initial global adapter as version 1, the coordinator id,
// single-use enrolment tokens (only their hashes stored; the tokens themselves in a 0600 file),
// a demo CA with a server certificate under tls/, for a multi-host folder the cluster key
// (cluster_key.h), and coordinator.json.
#ifndef FEDLORA_COORDINATOR_STATE_FOLDER_H_
#define FEDLORA_COORDINATOR_STATE_FOLDER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/store.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

struct StateFolderSpec {
  std::string state_dir;
  // Where the population's state lives: "" = SQLite inside state_dir (single-host mode), or a
  // libpq connection string / postgresql:// URI (multi-host mode; kept in <state>/store). It
  // must not carry a password: use ~/.pgpass, PGPASSFILE or PGPASSWORD.
  std::string store;
  nlohmann::json config;  // coordinator.json (keys: CoordinatorOptionsFromJson)
  AdapterBlob initial;    // version 1: LoRA config, base model hash, values
  int tokens = 10;
  std::vector<std::string> tls_names = {"localhost"};
  std::vector<std::string> tls_ips = {"127.0.0.1"};
};

struct StateFolderInfo {
  std::string adapter_sha256;       // version 1
  std::string tokens_file;          // <state>/enroll-tokens.txt
  std::vector<std::string> tokens;  // the same tokens, for a caller that enrols devices itself
  std::string ca_pem;               // <state>/tls/ca.pem
  double epsilon_per_round = 0;     // of the first round, at the config's delta
};

// Checks the config (CoordinatorOptionsFromJson) and that the recipe works for the adapter's
// size before anything is written. ALREADY_EXISTS when `state_dir` already holds a
// coordinator.json; INVALID_ARGUMENT / FAILED_PRECONDITION from the config checks; the store's
// and file system's errors otherwise. Randomness (token bytes, coordinator id) is SecureRandom.
absl::StatusOr<StateFolderInfo> CreateStateFolder(const StateFolderSpec& spec);

// The file of a state folder that names its PostgreSQL database (absent: SQLite in the folder).
inline constexpr char kStoreFile[] = "store";

// The store a state folder names: "" for SQLite in the folder, else the PostgreSQL connection
// string of <state>/store. NOT_FOUND when DIR is not a state folder.
absl::StatusOr<std::string> StateStoreConninfo(const std::string& state_dir);

// Opens the store of a state folder (SQLite in the folder, or the PostgreSQL database its
// `store` file names, with `fence` for a leader's writes). Every tool that reads or changes a
// population goes through here, so single- and multi-host folders work alike.
absl::StatusOr<std::unique_ptr<Store>> OpenStateStore(
    const std::string& state_dir, const std::optional<StoreFence>& fence = std::nullopt);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_STATE_FOLDER_H_
