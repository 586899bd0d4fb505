#include "fedlora/device/device_conditions.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedlora::device {
namespace {

std::string ReadTrimmed(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return std::string(absl::StripAsciiWhitespace(s));
}

}  // namespace

std::string ConditionRefusal(const ConditionRules& rules, const DeviceConditions& now) {
  std::vector<std::string> why;
  if (rules.require_charging && !now.charging) why.push_back("not charging");
  if (now.battery_percent < rules.min_battery_percent) {
    why.push_back(absl::StrCat("battery ", now.battery_percent, "% is below ",
                               rules.min_battery_percent, "%"));
  }
  if (rules.require_unmetered && !now.unmetered) why.push_back("on a metered network");
  if (rules.require_idle && !now.idle) why.push_back("in use");
  return absl::StrJoin(why, "; ");
}

std::optional<DeviceConditions> ReadPowerSupply(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return std::nullopt;
  bool battery = false, mains_online = false, battery_charging = false;
  int capacity = 100;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string type = ReadTrimmed(entry.path() / "type");
    if (type == "Mains" || type == "USB") {
      mains_online = mains_online || ReadTrimmed(entry.path() / "online") == "1";
    } else if (type == "Battery" && !battery) {
      battery = true;
      const std::string status = ReadTrimmed(entry.path() / "status");
      battery_charging = status == "Charging" || status == "Full";
      const std::string cap = ReadTrimmed(entry.path() / "capacity");
      if (!cap.empty()) capacity = std::atoi(cap.c_str());
    }
  }
  if (!battery) return std::nullopt;
  DeviceConditions c;
  c.charging = mains_online || battery_charging;
  c.battery_percent = capacity;
  return c;
}

}  // namespace fedlora::device
