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

namespace accel::runtime {

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
  // Waits until every change queued before this call is committed. Throws Error naming SQLite's
  // message if a commit failed (a full disk, say); the changes of that batch are not stored.
  void sync();
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
  sqlite3_stmt* statement(const std::string& sql);  // prepared once, reset for each use

  sqlite3* db_ = nullptr;
  sqlite3* checkpointer_ = nullptr;  // used by checkpoint() only
  std::string path_;
  std::mutex mutex_;  // the connection and its statements
  std::map<std::string, sqlite3_stmt*> statements_;

  std::mutex queue_mutex_;
  std::condition_variable committed_;
  std::vector<Change> queue_;
  std::uint64_t queued_count_ = 0, committed_count_ = 0;
  std::string commit_error_;  // the last failed commit's message, for sync()
  bool committing_ = false;
};

}  // namespace accel::runtime
