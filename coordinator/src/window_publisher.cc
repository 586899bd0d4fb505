#include "fedlora/coordinator/window_publisher.h"

#include "absl/strings/str_cat.h"

namespace fedlora::coordinator {

void InstallWindowPublisher(CoordinatorOptions* options, Store* store,
                            std::shared_ptr<const std::string> leader, bool leader_tls) {
  auto log = options->log;
  options->publish_window = [store, leader, leader_tls, log](const SelectionWindow& window) {
    SelectionWindow w = window;
    w.leader = *leader;
    w.leader_tls = leader_tls;
    absl::Status s = store->PutMeta(kSelectionWindowKey, SelectionWindowToJson(w));
    if (!s.ok() && log) {
      log(absl::StrCat("cannot publish round ", w.round, "'s selection window (", w.state,
                       ") for the edges: ", s.message()));
    }
  };
  options->coins_flipped_elsewhere = [store](uint64_t round, absl::Time opened) {
    auto v = store->GetMeta(CoinsFlippedKey(round));
    return v.ok() && *v == absl::StrCat(absl::ToUnixMillis(opened));
  };
}

std::string AdvertisedAddress(const std::string& advertise, const std::string& listen, int port) {
  if (!advertise.empty()) return advertise;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty()) host = "127.0.0.1";
  return absl::StrCat(host, ":", port);
}

}  // namespace fedlora::coordinator
