// The service's durable state in SQLite (WAL): users with hashed tokens, runtimes, jobs and
// events. Every change is committed before the API answers, so `kill -9` of the daemon loses
// no record. Runtimes and jobs are stored as JSON documents keyed by id (their fields evolve
// with the service; SQLite indexes what is queried).
#pragma once

#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
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

  void put(const char* table, const std::string& id, const std::string& owner, const nlohmann::json& doc);
  std::vector<nlohmann::json> all(const char* table);
  std::optional<nlohmann::json> find(const char* table, const std::string& id);

  void add_event(const Event& event);
  std::vector<Event> events(const std::string& runtime_id);

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::string path_;
  std::mutex mutex_;
};

}  // namespace accel::runtime
