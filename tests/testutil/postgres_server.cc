#include "testutil/postgres_server.h"

#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "testutil/process.h"

namespace fedlora::testing {
namespace {

std::string BinDir() {
  const char* env = std::getenv("FEDLORA_PG_BIN");
  return env && *env ? env : "/usr/lib/postgresql/15/bin";
}

std::string Tail(const std::string& s, size_t n = 2000) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

// `tool` with `args`, started as the server user: nobody through setpriv when we are root.
ChildProcess StartAsServerUser(const std::string& tool, const std::vector<std::string>& args,
                               const std::string& log) {
  return ChildProcess::StartUnprivileged(tool, args, log, {{"LC_ALL", "C"}});
}

}  // namespace

PostgresServer::PostgresServer() {
  const std::string bin = BinDir();
  for (const char* tool : {"initdb", "postgres"}) {
    if (::access((bin + "/" + tool).c_str(), X_OK) != 0) {
      error_ = "PostgreSQL 15 server binary " + bin + "/" + tool +
               " not found (hint: run `bash scripts/setup.sh test`, which installs "
               "postgresql-15; the PostgreSQL tests never skip)";
      return;
    }
  }
  if (::geteuid() == 0 && ::access("/usr/bin/setpriv", X_OK) != 0) {
    error_ = "running as root and /usr/bin/setpriv (util-linux) is missing: postgres refuses to "
             "run as root (hint: install util-linux)";
    return;
  }
  // Under /tmp, not TEST_TMPDIR: the server user must reach the folder, and a unix socket path
  // is limited to 107 bytes.
  std::string tmpl = "/tmp/fedlora-pg-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    error_ = "cannot create a folder under /tmp for PostgreSQL";
    return;
  }
  dir_ = tmpl;
  if (!ChildProcess::GiveToUnprivilegedUser(dir_)) {
    error_ = "cannot hand " + dir_ + " to the user nobody for the PostgreSQL server";
    return;
  }
  port_ = FreeLoopbackPort();
  ChildProcess initdb = StartAsServerUser(
      bin + "/initdb",
      {"-D", dir_ + "/data", "-U", "fedlora", "-A", "trust", "-E", "UTF8", "--no-locale", "-N"},
      dir_ + "/initdb");
  const int code = initdb.Wait(120);
  if (code != 0) {
    if (code == -1) initdb.Kill(SIGKILL);
    error_ = "initdb failed (exit " + std::to_string(code) + "): " + Tail(initdb.Err());
    return;
  }
  // The port was free a moment ago; another test may have taken it since: try fresh ones.
  for (int attempt = 0; attempt < 3; ++attempt) {
    error_ = Start();
    if (error_.find("already in use") == std::string::npos) break;
    port_ = FreeLoopbackPort();
  }
}

PostgresServer::~PostgresServer() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PostgresServer::Start() {
  if (running()) return "";
  postgres_ = std::make_unique<ChildProcess>(StartAsServerUser(
      BinDir() + "/postgres",
      {"-D", dir_ + "/data", "-k", dir_, "-h", "127.0.0.1", "-p", std::to_string(port_), "-c",
       "shared_buffers=16MB", "-c", "dynamic_shared_memory_type=mmap", "-c",
       "max_connections=200"},
      dir_ + "/postgres"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const std::string conninfo = ConnInfo() + " connect_timeout=2";
  while (std::chrono::steady_clock::now() < deadline) {
    if (!postgres_->Running()) {
      return "postgres exited at start: " + Tail(postgres_->Err());
    }
    if (PQping(conninfo.c_str()) == PQPING_OK) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string log = Tail(postgres_->Err());
  Stop();
  return "postgres did not accept connections within 60 s: " + log;
}

bool PostgresServer::running() { return postgres_ != nullptr && postgres_->Running(); }

void PostgresServer::Stop() {
  if (!running()) {
    postgres_.reset();
    return;
  }
  postgres_->Kill(SIGINT);  // fast shutdown: rolls back open transactions, checkpoints
  if (postgres_->Wait(10) == -1) {
    postgres_->Kill(SIGKILL);
    postgres_->Wait(10);
  }
  postgres_.reset();
}

std::string PostgresServer::ConnInfo(const std::string& dbname) const {
  return "host=" + dir_ + " port=" + std::to_string(port_) + " user=fedlora dbname=" + dbname;
}

std::string PostgresServer::Exec(const std::string& dbname, const std::string& sql,
                                 std::string* value) {
  PGconn* c = PQconnectdb(ConnInfo(dbname).c_str());
  std::string err;
  if (PQstatus(c) != CONNECTION_OK) {
    err = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) err = PQresultErrorMessage(r);
    if (value != nullptr) {
      *value = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    }
    PQclear(r);
  }
  PQfinish(c);
  return err;
}

std::string PostgresServer::CreateDatabase() {
  const std::string name =
      "t" + std::to_string(::getpid()) + "_" + std::to_string(++databases_);
  std::string err = Exec("postgres", "CREATE DATABASE " + name);
  if (!err.empty()) {
    error_ = "CREATE DATABASE " + name + ": " + err;
    return "";
  }
  return name;
}

}  // namespace fedlora::testing
