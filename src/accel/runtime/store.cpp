#include "accel/runtime/store.h"

#include "accel/core/error.h"

namespace accel::runtime {
namespace {

// Names the SQLite call, the file and line, and SQLite's message for a failed call.
#define ACCEL_SQLITE_CHECK(db, call, expected)                                                                       \
  do {                                                                                                               \
    const int rc_ = (call);                                                                                          \
    if (rc_ != (expected)) {                                                                                         \
      throw Error(std::string("SQLite: ") + #call + " returned " + sqlite3_errstr(rc_) + " (" + sqlite3_errmsg(db) + \
                  ") at " + __FILE__ + ":" + std::to_string(__LINE__));                                              \
    }                                                                                                                \
  } while (0)

struct Statement {
  sqlite3_stmt* stmt = nullptr;
  Statement(sqlite3* db, const char* sql) {
    ACCEL_SQLITE_CHECK(db, sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK);
  }
  ~Statement() { sqlite3_finalize(stmt); }
  void text(int index, const std::string& value) {
    sqlite3_bind_text(stmt, index, value.c_str(), -1, SQLITE_TRANSIENT);
  }
  std::string column(int index) const {
    const auto* text = sqlite3_column_text(stmt, index);
    return text ? reinterpret_cast<const char*>(text) : "";
  }
};

}  // namespace

Store::Store(const std::string& path) : path_(path) {
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    throw Error("cannot open the service database " + path + ": " + message);
  }
  sqlite3_busy_timeout(db_, 5000);  // `accel admin` may write while the daemon runs
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");  // committed transactions survive a crash of the process
  exec(
      "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, tier TEXT NOT NULL, admin INTEGER NOT NULL,"
      " token_hash TEXT NOT NULL UNIQUE)");
  exec("CREATE TABLE IF NOT EXISTS runtimes (id TEXT PRIMARY KEY, owner TEXT NOT NULL, doc TEXT NOT NULL)");
  exec("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, doc TEXT NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, runtime_id TEXT NOT NULL,"
      " time REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL)");
  exec("CREATE INDEX IF NOT EXISTS events_by_runtime ON events (runtime_id)");
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw Error("SQLite on " + path_ + ": " + message + " in: " + sql);
  }
}

void Store::add_user(const User& user, const std::string& token_hash) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "INSERT INTO users (name, tier, admin, token_hash) VALUES (?, ?, ?, ?)");
  s.text(1, user.name);
  s.text(2, user.tier);
  sqlite3_bind_int(s.stmt, 3, user.admin ? 1 : 0);
  s.text(4, token_hash);
  const int rc = sqlite3_step(s.stmt);
  if (rc == SQLITE_CONSTRAINT) throw ValueError("user '" + user.name + "' already exists");
  ACCEL_SQLITE_CHECK(db_, rc, SQLITE_DONE);
}

std::optional<User> Store::user_by_token_hash(const std::string& token_hash) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "SELECT name, tier, admin FROM users WHERE token_hash = ?");
  s.text(1, token_hash);
  if (sqlite3_step(s.stmt) != SQLITE_ROW) return std::nullopt;
  return User{s.column(0), s.column(1), sqlite3_column_int(s.stmt, 2) != 0};
}

std::vector<User> Store::users() {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "SELECT name, tier, admin FROM users ORDER BY name");
  std::vector<User> out;
  while (sqlite3_step(s.stmt) == SQLITE_ROW)
    out.push_back({s.column(0), s.column(1), sqlite3_column_int(s.stmt, 2) != 0});
  return out;
}

void Store::put(const char* table, const std::string& id, const std::string& owner, const nlohmann::json& doc) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string sql = std::string("INSERT INTO ") + table +
                          " (id, owner, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc";
  Statement s(db_, sql.c_str());
  s.text(1, id);
  s.text(2, owner);
  s.text(3, doc.dump());
  ACCEL_SQLITE_CHECK(db_, sqlite3_step(s.stmt), SQLITE_DONE);
}

std::vector<nlohmann::json> Store::all(const char* table) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, (std::string("SELECT doc FROM ") + table + " ORDER BY rowid").c_str());
  std::vector<nlohmann::json> out;
  while (sqlite3_step(s.stmt) == SQLITE_ROW) out.push_back(nlohmann::json::parse(s.column(0)));
  return out;
}

std::optional<nlohmann::json> Store::find(const char* table, const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, (std::string("SELECT doc FROM ") + table + " WHERE id = ?").c_str());
  s.text(1, id);
  if (sqlite3_step(s.stmt) != SQLITE_ROW) return std::nullopt;
  return nlohmann::json::parse(s.column(0));
}

void Store::add_event(const Event& event) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "INSERT INTO events (runtime_id, time, kind, message) VALUES (?, ?, ?, ?)");
  s.text(1, event.runtime_id);
  sqlite3_bind_double(s.stmt, 2, event.time);
  s.text(3, event.kind);
  s.text(4, event.message);
  ACCEL_SQLITE_CHECK(db_, sqlite3_step(s.stmt), SQLITE_DONE);
}

std::vector<Event> Store::events(const std::string& runtime_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "SELECT time, kind, message FROM events WHERE runtime_id = ? ORDER BY seq");
  s.text(1, runtime_id);
  std::vector<Event> out;
  while (sqlite3_step(s.stmt) == SQLITE_ROW) {
    out.push_back({sqlite3_column_double(s.stmt, 0), runtime_id, s.column(1), s.column(2)});
  }
  return out;
}

}  // namespace accel::runtime
