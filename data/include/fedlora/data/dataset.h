// The in-memory federated text dataset: a set of users, each with train and test messages.
//
// A "line" is one message (a chat message, one line of a play role). Loaders (load.h) and the
// synthetic persona generator (personas.h) both produce a FederatedDataset; the simulator
// picks users from it and trains on UserTrainText().
#ifndef FEDLORA_DATA_DATASET_H_
#define FEDLORA_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace fedlora::data {

// One federated user (a phone). Lines keep their original order; `train` holds the earlier
// lines and `test` the later ones (split by position, see SplitByPosition).
struct UserData {
  std::string id;                  // Stable, unique within a dataset, filesystem-safe where
                                   // the source allows (e.g. "Hamlet__HAMLET", "persona_007").
  std::vector<std::string> train;  // Messages for local training.
  std::vector<std::string> test;   // Held-back messages of the same user, for evaluation.

  size_t num_lines() const { return train.size() + test.size(); }
};

struct FederatedDataset {
  std::vector<UserData> users;
  std::string source;  // Human-readable origin, e.g. "shakespeare-tsv:/path/x.tsv".
};

// Returns how many of `n` lines go to the test split for `test_fraction` in [0, 1):
// floor(n * test_fraction), raised to 1 when test_fraction > 0 and n >= 2, and never more
// than n - 1 when n >= 1 (a user always keeps at least one train line).
size_t NumTestLines(size_t n, double test_fraction);

// Builds a user from its lines in order: the first n - NumTestLines(n) lines are train,
// the rest test.
UserData SplitByPosition(std::string id, std::vector<std::string> lines, double test_fraction);

// Returns the user's train (or test) messages joined by '\n' (no trailing newline); the
// text a local training step or an evaluation consumes.
std::string UserTrainText(const UserData& user);
std::string UserTestText(const UserData& user);

// Summary figures of a dataset. Line counts per user are train + test.
struct DatasetStats {
  int64_t users = 0;
  int64_t train_lines = 0;
  int64_t test_lines = 0;
  int64_t chars = 0;  // Bytes of all messages, train and test, without separators.
  int64_t min_lines_per_user = 0;
  double median_lines_per_user = 0;  // Mean of the two middle values for an even count.
  int64_t max_lines_per_user = 0;
};

// Returns the statistics of `dataset`; all zero for an empty dataset.
DatasetStats ComputeStats(const FederatedDataset& dataset);

}  // namespace fedlora::data

#endif  // FEDLORA_DATA_DATASET_H_
