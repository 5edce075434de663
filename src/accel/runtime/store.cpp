#include "accel/runtime/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <thread>
#include <unordered_map>

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
  // The service's alone (0600): it holds the users' token hashes. SQLite gives its -wal and
  // -shm files the database file's mode, so fixing the file's mode first covers all three.
  if (const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600); fd >= 0) {
    const int changed = fchmod(fd, 0600);
    close(fd);
    if (changed != 0) throw Error("cannot make the service database " + path + " private (chmod 0600)");
  }
  for (const char* suffix : {"-wal", "-shm"}) chmod((path + suffix).c_str(), 0600);  // left by an older service
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    throw Error("cannot open the service database " + path + ": " + message);
  }
  // `accel admin` may write while the daemon runs (a few ms). Longer waits hold every request of
  // a batch: a lock held for seconds is a failed commit (503, retried on a backoff).
  sqlite3_busy_timeout(db_, 1000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");  // committed transactions survive a crash of the process
  // No checkpoints inside commits: under load one took 30 ms and held every request of its
  // batch. checkpoint() runs them on a connection of its own, beside the commits.
  exec("PRAGMA wal_autocheckpoint=0");
  exec(
      "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, tier TEXT NOT NULL, admin INTEGER NOT NULL,"
      " token_hash TEXT NOT NULL UNIQUE)");
  exec("CREATE TABLE IF NOT EXISTS runtimes (id TEXT PRIMARY KEY, owner TEXT NOT NULL, doc TEXT NOT NULL)");
  exec("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, doc TEXT NOT NULL)");
  exec(
      "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, runtime_id TEXT NOT NULL,"
      " time REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL)");
  exec("CREATE INDEX IF NOT EXISTS events_by_runtime ON events (runtime_id)");
  // AUTOINCREMENT: a number is never handed out twice, so a new user never gets a uid whose
  // files or stray processes were an earlier user's.
  exec("CREATE TABLE IF NOT EXISTS tenants (number INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE)");
}

void Store::checkpoint() {
  if (!checkpointer_) {
    if (sqlite3_open_v2(path_.c_str(), &checkpointer_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      const std::string message = sqlite3_errmsg(checkpointer_);
      sqlite3_close(checkpointer_);
      checkpointer_ = nullptr;
      throw Error("cannot open the service database " + path_ + " to checkpoint it: " + message);
    }
    sqlite3_busy_timeout(checkpointer_, 1000);
    // A fresh connection learns that the file is in WAL mode only when it first reads it;
    // until then a checkpoint does nothing (and says so with a frame count of -1).
    sqlite3_exec(checkpointer_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  }
  // PASSIVE: copies what it can without waiting for or blocking commits; the WAL starts over
  // once a checkpoint has copied all of it.
  const int rc = sqlite3_wal_checkpoint_v2(checkpointer_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    throw Error("checkpoint of the service database " + path_ + ": " + sqlite3_errmsg(checkpointer_));
  }
}

Store::~Store() {
  try {
    sync();  // what is still queued
  } catch (const std::exception&) {
    // already answered to the callers that waited for it
  }
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  if (checkpointer_) sqlite3_close(checkpointer_);
  sqlite3_close(db_);
}

sqlite3_stmt* Store::put_statement(const std::string& table) {
  // Prepared once per table and kept: looked up by its SQL text, every put built that text and
  // compared it with the others' (their first 12 characters are the same).
  sqlite3_stmt*& kept = upserts_[table];
  if (!kept) {
    kept = statement("INSERT INTO " + table +
                     " (id, owner, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc");
  }
  sqlite3_reset(kept);
  sqlite3_clear_bindings(kept);
  return kept;
}

sqlite3_stmt* Store::statement(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    ACCEL_SQLITE_CHECK(db_, sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
    it = statements_.emplace(sql, stmt).first;
  }
  sqlite3_reset(it->second);
  sqlite3_clear_bindings(it->second);
  return it->second;
}

void Store::enqueue(Change change) {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  queue_.push_back(std::move(change));
  ++queued_count_;
}

void Store::put(const char* table, const std::string& id, const std::string& owner, DocumentFn doc) {
  enqueue(Put{table, id, owner, std::move(doc)});
}

void Store::add_event(Event event) { enqueue(std::move(event)); }

void Store::sync() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lock(queue_mutex_);
  const std::uint64_t target = queued_count_;
  const std::uint64_t failures_before = failures_;
  while (committed_count_ < target) {
    if (failures_ != failures_before) break;  // the commit that held these changes failed
    if (committing_) {                        // another caller is committing: wait for it, then maybe lead the next one
      committed_.wait(lock);
      continue;
    }
    if (!commit_error_.empty() && Clock::now() < retry_at_) break;  // failing: retry on the backoff
    // Lead: commit everything queued so far, for every caller waiting on it.
    committing_ = true;
    std::vector<Change> batch;
    batch.swap(queue_);
    const std::uint64_t upto = queued_count_;
    lock.unlock();
    std::string error;
    bool disk_full = false;
    try {
      commit(batch);
    } catch (const std::exception& e) {
      error = e.what();
      disk_full = error.find(sqlite3_errstr(SQLITE_FULL)) != std::string::npos;
    }
    // A full disk: give the reserve back and try once more at once.
    bool released = false;
    if (disk_full) {
      std::lock_guard<std::mutex> connection(mutex_);
      released = release_reserve();
    }
    if (released) {
      std::fprintf(stderr, "accel serve: the disk of %s is full; gave up its %llu-byte reserve to go on\n",
                   path_.c_str(), static_cast<unsigned long long>(reserve_bytes_));
      try {
        commit(batch);
        error.clear();
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    lock.lock();
    committing_ = false;
    if (error.empty()) {
      committed_count_ = upto;
      if (!commit_error_.empty()) {
        std::fprintf(stderr, "accel serve: the service database is writable again; %zu queued change(s) written\n",
                     batch.size());
      }
      commit_error_.clear();
      backoff_s_ = 0;
    } else {
      // Nothing is dropped: the batch goes back ahead of what was queued meanwhile.
      queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      if (commit_error_.empty())
        std::fprintf(stderr, "accel serve: cannot write the service database: %s\n", error.c_str());
      commit_error_ = error;
      ++failures_;
      backoff_s_ = backoff_s_ == 0 ? 0.05 : std::min(backoff_s_ * 2, 5.0);
      retry_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_s_));
    }
    committed_.notify_all();
  }
  if (committed_count_ < target) {
    throw DatabaseUnavailable("the service database " + path_ + " cannot be written: " + commit_error_ +
                              "; the change is kept and will be written when the cause goes away");
  }
}

bool Store::sync_within(double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (true) {
    try {
      sync();
      return true;
    } catch (const DatabaseUnavailable&) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

bool Store::writable() {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  return commit_error_.empty();
}

std::string Store::failure() {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  return commit_error_;
}

void Store::keep_reserve(std::uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserve_bytes_ = bytes;
  if (bytes == 0) {
    release_reserve();
  } else {
    make_reserve();
  }
}

bool Store::make_reserve() {
  if (reserve_held_ || reserve_bytes_ == 0) return false;
  // Only with room to spare: on a disk a tenant keeps full, the reserve waits.
  struct statvfs disk {};
  const std::string folder = path_.substr(0, path_.find_last_of('/') + 1);
  if (statvfs(folder.empty() ? "." : folder.c_str(), &disk) != 0 ||
      static_cast<double>(disk.f_bavail) * static_cast<double>(disk.f_frsize) <
          2.0 * static_cast<double>(reserve_bytes_))
    return false;
  const int fd = open(reserve_path().c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  // Blocks really allocated (not a sparse file), so that deleting it frees them.
  const bool made = posix_fallocate(fd, 0, static_cast<off_t>(reserve_bytes_)) == 0;
  close(fd);
  if (!made) unlink(reserve_path().c_str());  // no room yet: the ticker tries again
  reserve_held_ = made;
  return made;
}

bool Store::release_reserve() {
  if (!reserve_held_) return false;
  reserve_held_ = false;
  return unlink(reserve_path().c_str()) == 0;
}

void Store::commit(const std::vector<Change>& batch) {
  // Only the last put of each record in the batch is written: a runtime saved on create and
  // again on start is one row write, and one document built. Keyed "table/id" in a hash map:
  // time-ordered ids share their first dozen characters, which a tree compares at every level.
  std::unordered_map<std::string, std::size_t> last_put;
  last_put.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (const Put* put = std::get_if<Put>(&batch[i])) last_put[put->table + '/' + put->id] = i;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  exec("BEGIN IMMEDIATE");
  try {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (const Put* put = std::get_if<Put>(&batch[i])) {
        if (last_put.at(put->table + '/' + put->id) != i) continue;
        sqlite3_stmt* s = put_statement(put->table);
        const std::string doc = put->doc().dump();
        sqlite3_bind_text(s, 1, put->id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, put->owner.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, doc.c_str(), -1, SQLITE_TRANSIENT);
        ACCEL_SQLITE_CHECK(db_, sqlite3_step(s), SQLITE_DONE);
      } else {
        const Event& event = std::get<Event>(batch[i]);
        if (!insert_event_) {
          insert_event_ = statement("INSERT INTO events (runtime_id, time, kind, message) VALUES (?, ?, ?, ?)");
        }
        sqlite3_stmt* s = insert_event_;
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        sqlite3_bind_text(s, 1, event.runtime_id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(s, 2, event.time);
        sqlite3_bind_text(s, 3, event.kind.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 4, event.message.c_str(), -1, SQLITE_TRANSIENT);
        ACCEL_SQLITE_CHECK(db_, sqlite3_step(s), SQLITE_DONE);
      }
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

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
  sqlite3_stmt* s = statement("SELECT name, tier, admin FROM users WHERE token_hash = ?");
  // Reset on the way out: a statement left on its row keeps the read snapshot open, and users
  // that `accel admin user add` writes from another process would stay invisible.
  const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> reset(s, sqlite3_reset);
  sqlite3_bind_text(s, 1, token_hash.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(s) != SQLITE_ROW) return std::nullopt;
  const auto text = [&](int column) {
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, column)));
  };
  return User{text(0), text(1), sqlite3_column_int(s, 2) != 0};
}

std::vector<User> Store::users() {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "SELECT name, tier, admin FROM users ORDER BY name");
  std::vector<User> out;
  while (sqlite3_step(s.stmt) == SQLITE_ROW)
    out.push_back({s.column(0), s.column(1), sqlite3_column_int(s.stmt, 2) != 0});
  return out;
}

bool Store::change_user(const char* sql, std::initializer_list<std::string> values) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, sql);
  int index = 0;
  for (const std::string& value : values) s.text(++index, value);
  ACCEL_SQLITE_CHECK(db_, sqlite3_step(s.stmt), SQLITE_DONE);
  return sqlite3_changes(db_) > 0;
}

long long Store::tenant_number(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement add(db_, "INSERT OR IGNORE INTO tenants (name) VALUES (?)");
  add.text(1, name);
  ACCEL_SQLITE_CHECK(db_, sqlite3_step(add.stmt), SQLITE_DONE);
  Statement find(db_, "SELECT number FROM tenants WHERE name = ?");
  find.text(1, name);
  ACCEL_SQLITE_CHECK(db_, sqlite3_step(find.stmt), SQLITE_ROW);
  return sqlite3_column_int64(find.stmt, 0);
}

bool Store::remove_user(const std::string& name) {
  change_user("DELETE FROM tenants WHERE name = ?", {name});
  return change_user("DELETE FROM users WHERE name = ?", {name});
}

bool Store::set_user_tier(const std::string& name, const std::string& tier) {
  return change_user("UPDATE users SET tier = ? WHERE name = ?", {tier, name});
}

bool Store::set_user_token_hash(const std::string& name, const std::string& token_hash) {
  return change_user("UPDATE users SET token_hash = ? WHERE name = ?", {token_hash, name});
}

std::vector<nlohmann::json> Store::all(const char* table) {
  sync();
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, (std::string("SELECT doc FROM ") + table + " ORDER BY rowid").c_str());
  std::vector<nlohmann::json> out;
  while (sqlite3_step(s.stmt) == SQLITE_ROW) out.push_back(nlohmann::json::parse(s.column(0)));
  return out;
}

std::optional<nlohmann::json> Store::find(const char* table, const std::string& id) {
  sync();
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, (std::string("SELECT doc FROM ") + table + " WHERE id = ?").c_str());
  s.text(1, id);
  if (sqlite3_step(s.stmt) != SQLITE_ROW) return std::nullopt;
  return nlohmann::json::parse(s.column(0));
}

std::vector<Event> Store::events(const std::string& runtime_id) {
  sync();
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
