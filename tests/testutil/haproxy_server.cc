#include "testutil/haproxy_server.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fedlora/common/net_address.h"
#include "testutil/process.h"

namespace fedlora::testing {

HaproxyServer::HaproxyServer(const std::string& dir, const std::vector<HaproxyBackend>& backends,
                             int check_interval_ms, const std::string& balance)
    : dir_(dir) {
  const std::string bin = HaproxyBinary();
  if (::access(bin.c_str(), X_OK) != 0) {
    error_ = "HAProxy binary " + bin +
             " not found (hint: run `bash scripts/setup.sh test`, which installs haproxy; the "
             "multi-host process tests never skip)";
    return;
  }
  std::filesystem::create_directories(dir_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    HaproxyConfigSpec spec;
    spec.listen_port = port_ = FreeLoopbackPort();
    spec.backends = backends;
    spec.check_interval_ms = check_interval_ms;
    spec.balance = balance;
    config_ = HaproxyConfig(spec);
    std::ofstream(dir_ + "/haproxy.cfg") << config_;
    haproxy_ = std::make_unique<ChildProcess>(
        ChildProcess::Start(bin, {"-f", dir_ + "/haproxy.cfg", "-db"}, dir_ + "/haproxy"));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (haproxy_->Running() && !LoopbackPortAccepts(port_) &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (haproxy_->Running() && LoopbackPortAccepts(port_)) {
      error_.clear();
      return;
    }
    error_ = "haproxy did not start on 127.0.0.1:" + std::to_string(port_) + ": " +
             haproxy_->Err() + haproxy_->Out();
    Stop();
    // The port was free a moment ago; another test may have taken it: try a fresh one.
    if (error_.find("ddress already in use") == std::string::npos) return;
  }
}

HaproxyServer::~HaproxyServer() { Stop(); }

std::string HaproxyServer::Log() const { return haproxy_ ? haproxy_->Out() : ""; }

int HaproxyServer::pid() const { return haproxy_ ? haproxy_->pid() : 0; }

bool HaproxyServer::running() { return haproxy_ != nullptr && haproxy_->Running(); }

void HaproxyServer::Stop() {
  if (!running()) return;
  haproxy_->Kill(SIGTERM);  // hard stop: closes every session at once
  if (haproxy_->Wait(5) == -1) {
    haproxy_->Kill(SIGKILL);
    haproxy_->Wait(5);
  }
}

}  // namespace fedlora::testing
