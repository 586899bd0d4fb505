#include "coordinator/store_testutil.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace fedlora::coordinator::testing {
namespace {

class SqliteEngine final : public StoreEngine {
 public:
  explicit SqliteEngine(std::string dir) : dir_(std::move(dir)) {}
  std::string error() const override { return ""; }
  absl::StatusOr<std::unique_ptr<Store>> Open() const override { return OpenSqliteStore(dir_); }
  size_t BlobCount() const override {
    std::error_code ec;
    std::filesystem::directory_iterator it(dir_ + "/blobs", ec);
    return ec ? 0 : static_cast<size_t>(std::distance(it, {}));
  }
  void TamperBlob(const std::string& sha, const std::string& bytes) const override {
    std::ofstream f(dir_ + "/blobs/" + sha, std::ios::binary | std::ios::trunc);
    f << bytes;
  }

 private:
  std::string dir_;
};

#if FEDLORA_HAVE_POSTGRESQL
class PostgresEngine final : public StoreEngine {
 public:
  PostgresEngine() : server_(SharedPostgres()) {
    if (server_.ok()) db_ = server_.CreateDatabase();
    error_ = server_.ok() && !db_.empty() ? "" : server_.error();
  }
  std::string error() const override { return error_; }
  absl::StatusOr<std::unique_ptr<Store>> Open() const override {
    return OpenPostgresStore(server_.ConnInfo(db_));
  }
  size_t BlobCount() const override {
    std::string n;
    if (!server_.Exec(db_, "SELECT COUNT(*) FROM blobs", &n).empty()) return SIZE_MAX;
    return std::stoul(n);
  }
  void TamperBlob(const std::string& sha, const std::string& bytes) const override {
    std::string hex;
    for (unsigned char c : bytes) {
      static const char* k = "0123456789abcdef";
      hex += k[c >> 4];
      hex += k[c & 15];
    }
    server_.Exec(db_, "UPDATE blobs SET data = '\\x" + hex + "'::bytea WHERE sha256 = '" + sha +
                          "'");
  }

 private:
  fedlora::testing::PostgresServer& server_;
  std::string db_, error_;
};
#endif

}  // namespace

std::string AdapterFor(uint64_t r) {
  std::string s(40000 + r * 13, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>((i * 31 + r * 7) & 0xff);
  return s;
}

PrivacyCharge ChargeFor(uint64_t r) {
  return PrivacyCharge{r, "{\"round\":" + std::to_string(r) + "}", 0.1 * static_cast<double>(r),
                       0};
}

std::vector<std::string> StoreEngines() {
#if FEDLORA_HAVE_POSTGRESQL
  return {"sqlite", "postgresql"};
#else
  return {"sqlite"};
#endif
}

#if FEDLORA_HAVE_POSTGRESQL
fedlora::testing::PostgresServer& SharedPostgres() {
  static auto* server = new fedlora::testing::PostgresServer();
  static const bool stop_at_exit = [] {
    std::atexit([] { delete server; });
    return true;
  }();
  (void)stop_at_exit;
  return *server;
}
#endif

void StoreEngineTest::SetUp() {
  std::string tmpl = ::testing::TempDir() + "/store_engine_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  root_ = tmpl;
  engine_ = MakeStoreEngine(GetParam(), root_);
  ASSERT_EQ(engine_->error(), "");
}

void StoreEngineTest::TearDown() {
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

std::unique_ptr<Store> StoreEngineTest::Open() {
  auto s = engine_->Open();
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

std::string EngineName(const ::testing::TestParamInfo<std::string>& engine) {
  return engine.param;
}

std::unique_ptr<StoreEngine> MakeStoreEngine(const std::string& engine,
                                             const std::string& tmp_root) {
#if FEDLORA_HAVE_POSTGRESQL
  if (engine == "postgresql") return std::make_unique<PostgresEngine>();
#endif
  return std::make_unique<SqliteEngine>(tmp_root + "/state");
}

}  // namespace fedlora::coordinator::testing
