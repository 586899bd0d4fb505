// The Store engines the store contract runs against (store_test.cc): SQLite over a state
// folder, and PostgreSQL on a throwaway server (testutil/postgres_server.h) shared by the test
// process, one fresh database per test.
#ifndef FEDLORA_TESTS_COORDINATOR_STORE_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_STORE_TESTUTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/store.h"
#include "gtest/gtest.h"

#if FEDLORA_HAVE_POSTGRESQL
#include "testutil/postgres_server.h"
#endif

namespace fedlora::coordinator::testing {

// Deterministic adapter bytes for round r (about 40 kB; checked again after a crash).
std::string AdapterFor(uint64_t r);
// A charge for round r: mechanism {"round":r}, epsilon 0.1 r, time filled in by the store.
PrivacyCharge ChargeFor(uint64_t r);

// The engines this build has: "sqlite" and, with libpq, "postgresql".
std::vector<std::string> StoreEngines();

class StoreEngine {
 public:
  virtual ~StoreEngine() = default;
  // "" when the engine is ready (a fresh empty place made), else what went wrong.
  virtual std::string error() const = 0;
  // Opens (again) the store of this test: every call names the same place.
  virtual absl::StatusOr<std::unique_ptr<Store>> Open() const = 0;
  // The number of blobs stored.
  virtual size_t BlobCount() const = 0;
  // Replaces the stored bytes of blob `sha256_hex` behind the store's back.
  virtual void TamperBlob(const std::string& sha256_hex, const std::string& bytes) const = 0;
};

// `engine` is one of StoreEngines(); `tmp_root` an empty folder the test owns.
std::unique_ptr<StoreEngine> MakeStoreEngine(const std::string& engine,
                                             const std::string& tmp_root);

// A test run once per engine: INSTANTIATE_TEST_SUITE_P(Engines, <subclass>,
// ::testing::ValuesIn(StoreEngines()), EngineName). Each test gets an empty folder `root_`
// and a fresh place for its store (`engine_`).
class StoreEngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // engine_->Open(), failing the test (nullptr) on an error.
  std::unique_ptr<Store> Open();
  std::string root_;
  std::unique_ptr<StoreEngine> engine_;
};
std::string EngineName(const ::testing::TestParamInfo<std::string>& engine);

#if FEDLORA_HAVE_POSTGRESQL
// The server shared by the tests of this process (started at first use, stopped at exit).
fedlora::testing::PostgresServer& SharedPostgres();
#endif

}  // namespace fedlora::coordinator::testing

#endif  // FEDLORA_TESTS_COORDINATOR_STORE_TESTUTIL_H_
