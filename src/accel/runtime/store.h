// The service's durable state in SQLite (WAL): users with hashed tokens, runtimes, jobs and
// events. Runtimes and jobs are stored as JSON documents keyed by id (their fields evolve with
// the service; SQLite indexes what is queried).
//
// Group commit: put() and add_event() queue the change and return at once; sync() makes it
// durable: the first caller commits everything queued so far in one transaction while later
// callers wait for it (then one of them leads the next), as databases' group commit does. No
// separate writer thread: on this 2-core machine a woken writer waited behind 100 request
// threads for the CPU (8 ms per request). The API calls sync() before it answers, so `kill -9` of the daemon loses no
// record a client was told about, while 100 concurrent requests share a few transactions
// instead of taking turns at one each (docs/performance.md). Reads sync first, so they see
// every change queued before them.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "accel/core/error.h"

namespace accel::runtime {

// A commit failed (the disk is full, another writer holds the database's lock): the changes are
// kept, in order, and written by the next commit that succeeds; until then sync() throws this.
// The HTTP API answers it 503 with the reason.
class DatabaseUnavailable : public Error {
 public:
  using Error::Error;
};

struct User {
  std::string name;
  std::string tier;
  bool admin = false;
};

struct Event {
  double time = 0;
  std::string runtime_id;
  std::string kind;  // created, started, warning, terminated, job_started, job_finished, ...
  std::string message;
};

class Store {
 public:
  // Opens (creating) `path`; throws Error naming the file and SQLite's message.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Throws ValueError if the name exists.
  void add_user(const User& user, const std::string& token_hash);
  std::optional<User> user_by_token_hash(const std::string& token_hash);
  std::vector<User> users();
  // The user's tenant number, 1, 2, ...: given on first use and never given again, not even to a
  // later user of the same name (their uid is the service's tenant_uid_first + this number).
  long long tenant_number(const std::string& name);
  // Each returns false when no user has that name. Removing a user retires their tenant number.
  bool remove_user(const std::string& name);
  bool set_user_tier(const std::string& name, const std::string& tier);
  bool set_user_token_hash(const std::string& name, const std::string& token_hash);

  // Queued until the next sync() (table: "runtimes" or "jobs"). `doc` is called by the committing
  // caller, off the service's lock, and only for the last put of an id in a batch: pass a
  // closure over a copy of the record.
  using DocumentFn = std::function<nlohmann::json()>;
  void put(const char* table, const std::string& id, const std::string& owner, DocumentFn doc);
  void add_event(Event event);
  // Waits until every change queued before this call is committed. When a commit fails (a
  // full disk, a lock held too long) its changes go back to the head of the queue and this
  // throws DatabaseUnavailable naming SQLite's message; later calls retry, no more often than
  // a backoff that doubles from 50 ms to 5 s, and the first commit that succeeds writes them
  // all. Nothing queued is dropped.
  void sync();
  // sync(), retrying until it succeeds or `seconds` have passed (a graceful stop); false when
  // changes are still unwritten.
  bool sync_within(double seconds);
  // False from a failed commit until one succeeds: the service then refuses changes up front.
  bool writable();
  std::string failure();  // SQLite's message for the failing commit, or ""
  // Space held back on the database's file system (a file of this many bytes next to it),
  // given up when a commit finds the disk full, so that a tenant who fills the disk cannot
  // stop the service from recording state; made again once the space is free. 0: none.
  // Called again (each tick) it makes the reserve anew once there is room for it twice over.
  void keep_reserve(std::uint64_t bytes);
  // Copies committed pages from the WAL into the database file, on a second connection so that
  // commits go on meanwhile. The service's ticker calls it every tick (commits never do).
  void checkpoint();

  std::vector<nlohmann::json> all(const char* table);
  std::optional<nlohmann::json> find(const char* table, const std::string& id);
  std::vector<Event> events(const std::string& runtime_id);

 private:
  struct Put {
    std::string table, id, owner;
    DocumentFn doc;
  };
  using Change = std::variant<Put, Event>;

  void exec(const char* sql);
  // Runs a users-table statement with `values` bound in order; true when it changed a row.
  bool change_user(const char* sql, std::initializer_list<std::string> values);
  void enqueue(Change change);
  void commit(const std::vector<Change>& batch);
  sqlite3_stmt* statement(const std::string& sql);        // prepared once, reset for each use
  sqlite3_stmt* put_statement(const std::string& table);  // the same, for commit()'s upserts

  sqlite3* db_ = nullptr;
  sqlite3* checkpointer_ = nullptr;  // used by checkpoint() only
  std::string path_;
  std::mutex mutex_;  // the connection and its statements
  std::map<std::string, sqlite3_stmt*> statements_;
  std::map<std::string, sqlite3_stmt*> upserts_;  // table -> statements_'s upsert
  sqlite3_stmt* insert_event_ = nullptr;          // statements_'s

  std::mutex queue_mutex_;
  std::condition_variable committed_;
  std::vector<Change> queue_;
  std::uint64_t queued_count_ = 0, committed_count_ = 0;
  std::string commit_error_;  // the failing commit's message; empty while commits succeed
  std::uint64_t failures_ = 0;
  std::chrono::steady_clock::time_point retry_at_;
  double backoff_s_ = 0;
  bool committing_ = false;
  std::uint64_t reserve_bytes_ = 0;
  bool reserve_held_ = false;
  std::string reserve_path() const { return path_ + ".reserve"; }
  // Makes or gives up the reserve file; true when it gave space back.
  bool make_reserve();
  bool release_reserve();
};

}  // namespace accel::runtime
