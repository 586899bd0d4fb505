#include "fedlora/data/dataset.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"

namespace fedlora::data {

size_t NumTestLines(size_t n, double test_fraction) {
  if (n == 0 || test_fraction <= 0) return 0;
  size_t n_test = static_cast<size_t>(static_cast<double>(n) * test_fraction);
  if (n_test == 0 && n >= 2) n_test = 1;
  return std::min(n_test, n - 1);
}

UserData SplitByPosition(std::string id, std::vector<std::string> lines, double test_fraction) {
  UserData user;
  user.id = std::move(id);
  const size_t n_train = lines.size() - NumTestLines(lines.size(), test_fraction);
  user.test.assign(std::make_move_iterator(lines.begin() + n_train),
                   std::make_move_iterator(lines.end()));
  lines.resize(n_train);
  user.train = std::move(lines);
  return user;
}

std::string UserTrainText(const UserData& user) { return absl::StrJoin(user.train, "\n"); }

std::string UserTestText(const UserData& user) { return absl::StrJoin(user.test, "\n"); }

DatasetStats ComputeStats(const FederatedDataset& dataset) {
  DatasetStats s;
  if (dataset.users.empty()) return s;
  std::vector<int64_t> per_user;
  per_user.reserve(dataset.users.size());
  for (const UserData& u : dataset.users) {
    s.train_lines += static_cast<int64_t>(u.train.size());
    s.test_lines += static_cast<int64_t>(u.test.size());
    for (const auto& l : u.train) s.chars += static_cast<int64_t>(l.size());
    for (const auto& l : u.test) s.chars += static_cast<int64_t>(l.size());
    per_user.push_back(static_cast<int64_t>(u.num_lines()));
  }
  std::sort(per_user.begin(), per_user.end());
  const size_t n = per_user.size();
  s.users = static_cast<int64_t>(n);
  s.min_lines_per_user = per_user.front();
  s.max_lines_per_user = per_user.back();
  s.median_lines_per_user = n % 2 == 1 ? static_cast<double>(per_user[n / 2])
                                       : (per_user[n / 2 - 1] + per_user[n / 2]) / 2.0;
  return s;
}

}  // namespace fedlora::data
