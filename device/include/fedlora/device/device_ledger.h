// The device's own privacy ledger: one entry per round it took part in, with the round's
// unamplified RDP charge (task_privacy.h), composed over the rounds. Its epsilon holds against
// the coordinator and anyone who sees the unmasking of this device's masked input, i.e.
// without amplification by sampling.
//
// File: <state>/privacy-ledger.jsonl, append-only, mode 0600. Each line is
//   {"sha256":"<hex of ENTRY>","entry":ENTRY}
// where ENTRY is the entry's JSON text (round, unix time, RDP orders and values, the composed
// noise multiplier, the coordinator's claim). Every append writes the line after the last
// complete entry and fsyncs the file (and the folder when the file is created) before it
// returns, i.e. before the caller sends anything. A last line cut short by a crash (no newline, or
// a checksum that does not match) is dropped when the ledger is opened and cut off before the next
// append; every complete entry before it stays. A damaged line followed by good ones is DATA_LOSS:
// the device then refuses every task, since it can no longer tell what it has spent.
#ifndef FEDLORA_DEVICE_DEVICE_LEDGER_H_
#define FEDLORA_DEVICE_DEVICE_LEDGER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fedlora::device {

struct DeviceLedgerEntry {
  uint64_t round = 0;
  int64_t unix_seconds = 0;
  double noise_multiplier = 0;  // the round's composed z (ComposedNoiseMultiplier)
  std::vector<double> rdp;      // the round's unamplified RDP at DeviceLedger::orders()
  // The coordinator's claim for the run once the round is charged: amplified by sampling, so
  // it holds only for observers of released adapters (logged for comparison, never composed).
  double coordinator_epsilon = 0;
  double coordinator_delta = 0;
};

class DeviceLedger {
 public:
  static constexpr const char* kFileName = "privacy-ledger.jsonl";

  // Reads <state_dir>/privacy-ledger.jsonl (an absent file is an empty ledger). A torn last
  // line is dropped (recovered_bytes() says how many bytes). DATA_LOSS (with a hint) for a
  // damaged line before the last or an entry whose orders differ from privacy::
  // DefaultRdpOrders(); the file's read errors otherwise.
  static absl::StatusOr<DeviceLedger> Open(const std::string& state_dir);

  const std::string& path() const { return path_; }
  const std::vector<double>& orders() const { return orders_; }
  const std::vector<DeviceLedgerEntry>& entries() const { return entries_; }
  int rounds_charged() const { return static_cast<int>(entries_.size()); }
  int64_t recovered_bytes() const { return recovered_bytes_; }

  // The composed RDP of every entry, plus `extra` (a round not charged yet) when given.
  std::vector<double> TotalRdp(const std::vector<double>* extra = nullptr) const;
  // Epsilon at `delta` of TotalRdp(extra): 0 for an empty ledger, +inf when a charge is
  // infinite. INVALID_ARGUMENT for delta outside (0, 1) or an `extra` of the wrong length.
  absl::StatusOr<double> Epsilon(double delta, const std::vector<double>* extra = nullptr) const;

  // Appends `entry` durably (see the file comment) before returning OK. Under an exclusive
  // flock it first rereads the file (entries() then includes what another process appended
  // since Open; only a torn tail is ever cut). On failure the file is cut back to its
  // previous size and the entry is not in the ledger: RESOURCE_EXHAUSTED for a full disk,
  // INTERNAL for other I/O errors, DATA_LOSS as Open, INVALID_ARGUMENT for an entry whose rdp
  // does not match orders() or holds NaN/negative values. One device process per state folder
  // is assumed for the budget (two processes could both pass CheckBudget before appending).
  absl::Status Append(const DeviceLedgerEntry& entry);

 private:
  DeviceLedger() = default;
  absl::Status Load(const std::string& data);  // parses the file's bytes (see Open)
  std::string dir_, path_;
  std::vector<double> orders_;
  std::vector<DeviceLedgerEntry> entries_;
  int64_t good_bytes_ = 0;       // the file's length up to the last complete entry
  int64_t recovered_bytes_ = 0;  // a torn tail dropped at Open
};

// Whether a round charging `charge` fits the budget.
struct BudgetCheck {
  bool allowed = false;
  double spent = 0;    // epsilon now
  double after = 0;    // epsilon with the round charged
  std::string reason;  // when not allowed: spent, after and the budget, in one sentence
};

// Epsilons at `delta`; allowed when `after` <= budget. Errors like DeviceLedger::Epsilon.
absl::StatusOr<BudgetCheck> CheckBudget(const DeviceLedger& ledger,
                                        const std::vector<double>& charge, double budget,
                                        double delta);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_DEVICE_LEDGER_H_
