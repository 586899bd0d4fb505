// Device conditions (device/device_conditions.h): the rules' refusals, the Linux power-supply
// reader on a fake sysfs tree, and `fedlora device run` doing nothing when they say no.
#include "fedlora/device/device_conditions.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testutil/cli_runner.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(DeviceConditionsTest, RefusalNamesEveryUnmetRule) {
  ConditionRules rules;
  DeviceConditions ok;
  EXPECT_EQ(ConditionRefusal(rules, ok), "");
  DeviceConditions bad;
  bad.charging = false;
  bad.unmetered = false;
  bad.idle = false;
  bad.battery_percent = 12;
  EXPECT_EQ(ConditionRefusal(rules, bad),
            "not charging; battery 12% is below 20%; on a metered network; in use");
  // Rules can be relaxed one by one; the battery floor applies while charging too.
  rules.require_charging = false;
  rules.require_unmetered = false;
  rules.require_idle = false;
  bad.battery_percent = 50;
  EXPECT_EQ(ConditionRefusal(rules, bad), "");
  DeviceConditions low;
  low.battery_percent = 5;
  EXPECT_THAT(ConditionRefusal(ConditionRules{}, low), HasSubstr("battery 5% is below 20%"));
}

void Put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text << "\n";
}

TEST(DeviceConditionsTest, ReadsLinuxPowerSupply) {
  const fs::path root = fs::temp_directory_path() / "fedlora_power_supply";
  fs::remove_all(root);
  EXPECT_FALSE(ReadPowerSupply(root.string()).has_value()) << "no sysfs tree";
  Put(root / "AC" / "type", "Mains");
  Put(root / "AC" / "online", "0");
  EXPECT_FALSE(ReadPowerSupply(root.string()).has_value()) << "no battery: a desktop";
  Put(root / "BAT0" / "type", "Battery");
  Put(root / "BAT0" / "status", "Discharging");
  Put(root / "BAT0" / "capacity", "42");
  auto c = ReadPowerSupply(root.string());
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->charging);
  EXPECT_EQ(c->battery_percent, 42);
  Put(root / "AC" / "online", "1");
  EXPECT_TRUE(ReadPowerSupply(root.string())->charging);
  Put(root / "AC" / "online", "0");
  Put(root / "BAT0" / "status", "Full");
  EXPECT_TRUE(ReadPowerSupply(root.string())->charging);
  fs::remove_all(root);
}

TEST(DeviceConditionsTest, DeviceRunDoesNothingWhenConditionsSayNo) {
  const std::string dir = (fs::temp_directory_path() / "fedlora_device_conditions_cli").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  // Nothing here exists: a device that may not train loads nothing and contacts no one.
  const std::string args =
      "device run --coordinator 127.0.0.1:9 --ca " + dir + "/ca.pem --state " + dir +
      "/phone --model " + dir + "/model --data " + dir + "/text.txt --on-battery --battery 15 "
      "--metered --json";
  auto r = testing::RunFedlora(args, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["completed"], 0);
  EXPECT_EQ(j["bytes_sent"], 0);
  const std::string why = j["stopped_because"];
  EXPECT_THAT(why, HasSubstr("not charging"));
  EXPECT_THAT(why, HasSubstr("battery 15% is below 20%"));
  EXPECT_THAT(why, HasSubstr("metered"));
  // With the conditions met it goes on, and then fails on the missing state, as before.
  auto go = testing::RunFedlora("device run --coordinator 127.0.0.1:9 --ca " + dir +
                                    "/ca.pem --state " + dir + "/phone --model " + dir +
                                    "/model --data " + dir + "/text.txt --charging --battery 90",
                                dir);
  EXPECT_NE(go.exit_code, 0);
  EXPECT_THAT(go.err, HasSubstr("enroll"));
  EXPECT_NE(testing::RunFedlora("device run --charging --on-battery --coordinator x --ca y "
                                "--state s --model m --data d",
                                dir)
                .exit_code,
            0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::device
