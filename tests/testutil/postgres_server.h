// A throwaway PostgreSQL 15 server for tests, from Debian's binaries (postgresql-15,
// /usr/lib/postgresql/15/bin; FEDLORA_PG_BIN overrides): `initdb` in a fresh folder under
// /tmp, then `postgres` listening on a unix socket in that folder and on 127.0.0.1 only, on a
// free port, trust authentication for user "fedlora". Run as root (CI), the server runs as
// the unprivileged user nobody (postgres refuses root) through setpriv, the folder chowned to
// it. Stopped in bounded time: SIGINT (fast shutdown), SIGKILL after 10 s.
//
// When the binaries are missing, ok() is false and error() names `bash scripts/setup.sh test`:
// a test must FAIL then, never skip (CI has to run the real path).
#ifndef FEDLORA_TESTS_TESTUTIL_POSTGRES_SERVER_H_
#define FEDLORA_TESTS_TESTUTIL_POSTGRES_SERVER_H_

#include <memory>
#include <string>

#include "fedlora/common/child_process.h"

namespace fedlora::testing {

class PostgresServer {
 public:
  // initdb + start; waits up to 60 s for the server to accept connections.
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Fast shutdown (SIGINT), then SIGKILL if still running after 10 s. Idempotent.
  void Stop();
  // Starts the server again on the same data folder and port; "" when it accepts connections,
  // else what went wrong.
  std::string Start();
  bool running();

  // libpq connection string for database `dbname` over the unix socket.
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  // Creates a new empty database with a unique name and returns the name ("" and error() on
  // failure).
  std::string CreateDatabase();
  // Runs `sql` (no parameters: test code only) on `dbname`; "" on success, else the error.
  // `value`, if given, receives the first column of the first row ("" if none).
  std::string Exec(const std::string& dbname, const std::string& sql,
                   std::string* value = nullptr);

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;  // the server's folder: data/ and the socket
  int port_ = 0;
  std::string error_;
  std::unique_ptr<ChildProcess> postgres_;
  int databases_ = 0;
};

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_TESTUTIL_POSTGRES_SERVER_H_
