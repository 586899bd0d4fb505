// A multi-host leader's side of the edges' protocol (selection_window.h): installs the
// RoundManager hooks that publish each selection window to the store and read the edges'
// records of flipped coins.
#ifndef FEDLORA_COORDINATOR_WINDOW_PUBLISHER_H_
#define FEDLORA_COORDINATOR_WINDOW_PUBLISHER_H_

#include <memory>
#include <string>

#include "fedlora/coordinator/round_manager.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {

// Sets options->publish_window (PutMeta(kSelectionWindowKey) with *leader, the address edges
// forward to, read at each publication; a fenced leader's write fails and is logged) and
// options->coins_flipped_elsewhere (CoinsFlippedKey names the window). `store` must outlive
// the manager.
void InstallWindowPublisher(CoordinatorOptions* options, Store* store,
                            std::shared_ptr<const std::string> leader, bool leader_tls);

// The address edges reach a leader at when it listens on `listen` and got `port`: `advertise`
// when given, else the listen host (a wildcard 0.0.0.0 / [::] as 127.0.0.1: pass --advertise
// on a real network) with the bound port.
std::string AdvertisedAddress(const std::string& advertise, const std::string& listen, int port);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_WINDOW_PUBLISHER_H_
