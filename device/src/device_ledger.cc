#include "fedlora/device/device_ledger.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/rdp.h"
#include "nlohmann/json.hpp"

namespace fedlora::device {
namespace {

constexpr char kPrefix[] = "{\"sha256\":\"";
constexpr char kMiddle[] = "\",\"entry\":";
constexpr size_t kHexLen = 64;

// JSON has no infinity: an infinite RDP value is written as null and read back as +inf.
nlohmann::json Numbers(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(std::isinf(x) ? nlohmann::json(nullptr) : nlohmann::json(x));
  return a;
}

bool ReadNumbers(const nlohmann::json& a, std::vector<double>* out) {
  if (!a.is_array()) return false;
  out->clear();
  for (const auto& x : a) {
    if (x.is_null()) {
      out->push_back(std::numeric_limits<double>::infinity());
    } else if (x.is_number()) {
      out->push_back(x.get<double>());
    } else {
      return false;
    }
  }
  return true;
}

std::string EntryText(const DeviceLedgerEntry& e, const std::vector<double>& orders) {
  return nlohmann::json{{"round", e.round},
                        {"unix", e.unix_seconds},
                        {"noise_multiplier", e.noise_multiplier},
                        {"coordinator_epsilon", e.coordinator_epsilon},
                        {"coordinator_delta", e.coordinator_delta},
                        {"orders", Numbers(orders)},
                        {"rdp", Numbers(e.rdp)}}
      .dump();
}

// One line (without its newline) -> entry; false when the line is not an intact entry.
bool ParseLine(const std::string& line, std::vector<double>* orders, DeviceLedgerEntry* e) {
  const size_t head = sizeof(kPrefix) - 1 + kHexLen + sizeof(kMiddle) - 1;
  if (line.size() < head + 2 || line.compare(0, sizeof(kPrefix) - 1, kPrefix) != 0 ||
      line.compare(sizeof(kPrefix) - 1 + kHexLen, sizeof(kMiddle) - 1, kMiddle) != 0 ||
      line.back() != '}') {
    return false;
  }
  const std::string text = line.substr(head, line.size() - head - 1);
  if (HexEncode(Sha256(text)) != line.substr(sizeof(kPrefix) - 1, kHexLen)) return false;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  try {
    e->round = j.at("round").get<uint64_t>();
    e->unix_seconds = j.at("unix").get<int64_t>();
    e->noise_multiplier = j.at("noise_multiplier").get<double>();
    e->coordinator_epsilon = j.at("coordinator_epsilon").get<double>();
    e->coordinator_delta = j.at("coordinator_delta").get<double>();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return ReadNumbers(j["orders"], orders) && ReadNumbers(j["rdp"], &e->rdp) &&
         e->rdp.size() == orders->size();
}

absl::Status IoError(const std::string& what, const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "device ledger: ", what, " ", path, ": ", std::strerror(err),
        " (hint: free space on the device; nothing was sent and the ledger is unchanged)"));
  }
  return absl::InternalError(absl::StrCat("device ledger: ", what, " ", path, ": ",
                                          std::strerror(err),
                                          " (hint: nothing was sent; check the state folder)"));
}

}  // namespace

absl::StatusOr<DeviceLedger> DeviceLedger::Open(const std::string& state_dir) {
  DeviceLedger l;
  l.dir_ = state_dir;
  l.path_ = (std::filesystem::path(state_dir) / kFileName).string();
  l.orders_ = privacy::DefaultRdpOrders();
  if (!std::filesystem::exists(l.path_)) return l;
  FEDLORA_ASSIGN_OR_RETURN(std::string data, ReadFileToString(l.path_));
  FEDLORA_RETURN_IF_ERROR(l.Load(data));
  return l;
}

absl::Status DeviceLedger::Load(const std::string& data) {
  DeviceLedger& l = *this;
  l.entries_.clear();
  l.good_bytes_ = 0;
  l.recovered_bytes_ = 0;
  size_t pos = 0;
  int line_no = 0;
  while (pos < data.size()) {
    ++line_no;
    const size_t nl = data.find('\n', pos);
    const bool last = nl == std::string::npos || nl + 1 == data.size();
    const std::string line =
        data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    std::vector<double> orders;
    DeviceLedgerEntry e;
    const bool intact = nl != std::string::npos && ParseLine(line, &orders, &e);
    if (!intact) {
      if (last) {  // a write cut short by a crash: the entries before it stand
        l.recovered_bytes_ = static_cast<int64_t>(data.size() - pos);
        break;
      }
      return absl::DataLossError(absl::StrFormat(
          "device ledger %s: line %d is damaged and entries follow it (hint: restore the file "
          "from a backup; until then this device refuses every task, since it cannot tell how "
          "much privacy it has spent)",
          l.path_, line_no));
    }
    if (orders != l.orders_) {
      return absl::DataLossError(absl::StrFormat(
          "device ledger %s: line %d uses other RDP orders than this build (hint: it was "
          "written by another fedlora version; use that version, or keep the file and start a "
          "new state folder)",
          l.path_, line_no));
    }
    l.entries_.push_back(std::move(e));
    pos = nl + 1;
    l.good_bytes_ = static_cast<int64_t>(pos);
  }
  return absl::OkStatus();
}

std::vector<double> DeviceLedger::TotalRdp(const std::vector<double>* extra) const {
  std::vector<double> total(orders_.size(), 0.0);
  for (const auto& e : entries_) {
    for (size_t i = 0; i < total.size(); ++i) total[i] += e.rdp[i];
  }
  if (extra != nullptr && extra->size() == total.size()) {
    for (size_t i = 0; i < total.size(); ++i) total[i] += (*extra)[i];
  }
  return total;
}

absl::StatusOr<double> DeviceLedger::Epsilon(double delta, const std::vector<double>* extra) const {
  if (extra != nullptr && extra->size() != orders_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device ledger: a charge has %d RDP values, the ledger's orders %d (hint: compute it "
        "at DeviceLedger::orders())",
        extra->size(), orders_.size()));
  }
  FEDLORA_ASSIGN_OR_RETURN(privacy::EpsilonResult r,
                           privacy::RdpToEpsilon(orders_, TotalRdp(extra), delta));
  return r.epsilon;
}

absl::Status DeviceLedger::Append(const DeviceLedgerEntry& entry) {
  if (entry.rdp.size() != orders_.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("device ledger: the entry has %d RDP values, the ledger's orders %d",
                        entry.rdp.size(), orders_.size()));
  }
  for (double x : entry.rdp) {
    if (!(x >= 0)) {
      return absl::InvalidArgumentError("device ledger: RDP values must be >= 0 (got NaN or < 0)");
    }
  }
  const std::string text = EntryText(entry, orders_);
  const std::string line = absl::StrCat(kPrefix, HexEncode(Sha256(text)), kMiddle, text, "}\n");
  FEDLORA_RETURN_IF_ERROR(MakeDirs(dir_));
  const bool created = !std::filesystem::exists(path_);
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot open", path_, errno);
  // Under an exclusive lock, read the file again: another process may have appended since
  // Open, and only a torn tail may ever be cut (never a complete entry).
  std::string current;
  int err = ::flock(fd, LOCK_EX) == 0 ? 0 : errno;
  for (char buf[65536]; err == 0;) {
    const ssize_t n = ::pread(fd, buf, sizeof(buf), static_cast<off_t>(current.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    current.append(buf, static_cast<size_t>(n));
  }
  if (err != 0) {
    ::close(fd);
    return IoError("cannot read", path_, err);
  }
  if (absl::Status s = Load(current); !s.ok()) {
    ::close(fd);
    return s;
  }
  // Cut a torn tail first, so the new entry starts on a line of its own.
  if (::ftruncate(fd, good_bytes_) != 0 || ::lseek(fd, good_bytes_, SEEK_SET) < 0) {
    err = errno;
    ::close(fd);
    return IoError("cannot prepare", path_, err);
  }
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (err != 0) {
    if (::ftruncate(fd, good_bytes_) == 0) (void)::fsync(fd);
    ::close(fd);
    return IoError("cannot write", path_, err);
  }
  if (::close(fd) != 0) return IoError("cannot close", path_, errno);
  if (created) {  // the new file's name must survive a power cut too
    const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      const bool synced = ::fsync(dfd) == 0;
      const int derr = errno;
      ::close(dfd);
      if (!synced) return IoError("cannot sync the folder of", path_, derr);
    }
  }
  good_bytes_ += static_cast<int64_t>(line.size());
  recovered_bytes_ = 0;
  entries_.push_back(entry);
  return absl::OkStatus();
}

absl::StatusOr<BudgetCheck> CheckBudget(const DeviceLedger& ledger,
                                        const std::vector<double>& charge, double budget,
                                        double delta) {
  BudgetCheck c;
  FEDLORA_ASSIGN_OR_RETURN(c.spent, ledger.Epsilon(delta));
  FEDLORA_ASSIGN_OR_RETURN(c.after, ledger.Epsilon(delta, &charge));
  c.allowed = c.after <= budget;
  if (!c.allowed) {
    c.reason = absl::StrFormat(
        "this device's privacy budget: epsilon %.4g spent against the coordinator over %d "
        "rounds; this round would take it to %.4g > budget %g (delta %g)",
        c.spent, ledger.rounds_charged(), c.after, budget, delta);
  }
  return c;
}

}  // namespace fedlora::device
