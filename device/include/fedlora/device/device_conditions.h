// When a device may train and upload: the conditions an app reports (or the OS shows) against
// the rules it sets (docs/device.md, "Device policy"). A phone trains only while it would not
// notice: charging or with battery to spare, idle, and on an unmetered network.
#ifndef FEDLORA_DEVICE_DEVICE_CONDITIONS_H_
#define FEDLORA_DEVICE_DEVICE_CONDITIONS_H_

#include <optional>
#include <string>

namespace fedlora::device {

// What the device is doing now (the app's inputs).
struct DeviceConditions {
  bool charging = true;
  bool unmetered = true;  // Wi-Fi or another network the user does not pay per byte for
  bool idle = true;       // screen off / not in use
  int battery_percent = 100;
};

// The rules. Defaults follow what production keyboards require before training.
struct ConditionRules {
  bool require_charging = true;
  bool require_unmetered = true;
  bool require_idle = true;
  int min_battery_percent = 20;  // also applies while charging
};

// "" when the device may train and upload now; otherwise every unmet rule, e.g.
// "not charging; battery 12% is below 20%".
std::string ConditionRefusal(const ConditionRules& rules, const DeviceConditions& now);

// On Linux, what /sys/class/power_supply says (charging: a mains supply online or a battery
// "Charging"/"Full"; battery_percent: the first battery's capacity). nullopt where there is no
// battery (a desktop or server: treated as always charging by the caller). Network and
// idleness are not read: they come from the app or the command line.
std::optional<DeviceConditions> ReadPowerSupply(const std::string& root = "/sys/class/power_supply");

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_DEVICE_CONDITIONS_H_
