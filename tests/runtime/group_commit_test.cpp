// The pieces behind the service's throughput: the store's group commit, the combiner that runs
// request operations in arrival order, and time-ordered ids.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "accel/runtime/combiner.h"
#include "accel/runtime/runtime_service.h"
#include "accel/runtime/store.h"

using namespace accel::runtime;

namespace {

std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST(GroupCommit, QueuedChangesAreReadBackAndSurviveReopeningTheDatabase) {
  const auto dir = fresh_dir("accel_group_commit");
  const std::string db = (dir / "service.db").string();
  {
    Store store(db);
    std::atomic<int> documents_built{0};
    for (int version = 1; version <= 3; ++version) {
      store.put("runtimes", "rt-1", "ann", [version, &documents_built] {
        ++documents_built;
        return nlohmann::json{{"id", "rt-1"}, {"version", version}};
      });
    }
    store.add_event({1.0, "rt-1", "created", "requested cpu"});
    store.add_event({2.0, "rt-1", "started", "leased cpu"});
    // A read sees every change queued before it.
    ASSERT_TRUE(store.find("runtimes", "rt-1"));
    EXPECT_EQ((*store.find("runtimes", "rt-1"))["version"], 3);
    EXPECT_EQ(documents_built, 1);  // one commit: only the last put of rt-1 was built
    ASSERT_EQ(store.events("rt-1").size(), 2u);
    EXPECT_EQ(store.events("rt-1")[1].kind, "started");
    store.put("jobs", "job-1", "ann", [] { return nlohmann::json{{"id", "job-1"}}; });
  }  // the destructor commits what is still queued
  Store reopened(db);
  EXPECT_EQ(reopened.all("jobs").size(), 1u);
  EXPECT_EQ((*reopened.find("runtimes", "rt-1"))["version"], 3);
  std::filesystem::remove_all(dir);
}

// The reported outage: another writer held the database's lock for 8 s and every request was
// answered 500 until a restart, with the failed batch lost. Now the batch waits at the head of
// the queue, sync() says why it cannot write (DatabaseUnavailable), and the first commit after
// the lock is gone writes it and everything queued behind it, in order.
TEST(GroupCommit, AFailedCommitKeepsItsChangesAndTheFirstCommitThatSucceedsWritesThem) {
  const auto dir = fresh_dir("accel_failed_commit");
  const std::string db = (dir / "service.db").string();
  Store store(db);
  store.put("runtimes", "rt-1", "ann", [] { return nlohmann::json{{"id", "rt-1"}, {"state", "running"}}; });
  store.sync();
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);  // holds the write lock

  store.put("runtimes", "rt-1", "ann", [] { return nlohmann::json{{"id", "rt-1"}, {"state", "terminated"}}; });
  store.add_event({1.0, "rt-1", "terminated", "reason: user"});
  try {
    store.sync();
    FAIL() << "expected DatabaseUnavailable while another connection holds the lock";
  } catch (const DatabaseUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("locked"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(store.writable());
  EXPECT_NE(store.failure().find("locked"), std::string::npos);
  // Changes made meanwhile queue behind the failed batch; a retry before the backoff is
  // answered at once instead of waiting on the lock again.
  store.put("runtimes", "rt-2", "bob", [] { return nlohmann::json{{"id", "rt-2"}, {"state", "running"}}; });
  const auto before = std::chrono::steady_clock::now();
  EXPECT_THROW(store.sync(), DatabaseUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(500));

  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);  // the cause goes away
  sqlite3_close(other);
  EXPECT_TRUE(store.sync_within(5));
  EXPECT_TRUE(store.writable());
  EXPECT_EQ((*store.find("runtimes", "rt-1"))["state"], "terminated");
  EXPECT_TRUE(store.find("runtimes", "rt-2"));
  ASSERT_EQ(store.events("rt-1").size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(GroupCommit, ConcurrentWritersShareTransactionsAndLoseNothing) {
  const auto dir = fresh_dir("accel_group_commit_threads");
  Store store((dir / "service.db").string());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string id = "rt-" + std::to_string(t) + "-" + std::to_string(i);
        store.put("runtimes", id, "ann", [id] { return nlohmann::json{{"id", id}}; });
        store.add_event({0, id, "created", ""});
        store.sync();  // as the API does before it answers
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store.all("runtimes").size(), 400u);
  EXPECT_EQ(store.events("rt-7-49").size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(Combiner, RunsEveryOperationOnceAndNeverTwoAtATime) {
  std::atomic<int> inside{0}, overlaps{0}, commits{0};
  std::vector<int> ran;  // written without a lock: the combiner runs one operation at a time
  Combiner combiner([&] { ++commits; });
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        combiner.run([&] {
          if (inside.fetch_add(1) != 0) ++overlaps;
          ran.push_back(t * 100 + i);
          std::this_thread::yield();  // widen the window another thread would have to overlap
          inside.fetch_sub(1);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps, 0);
  ASSERT_EQ(ran.size(), 1600u);
  EXPECT_EQ(std::set<int>(ran.begin(), ran.end()).size(), 1600u);  // each exactly once
  EXPECT_GE(commits, 1);
  EXPECT_LE(commits, 1600);
}

TEST(Combiner, AnOperationsErrorGoesToItsCallerAndACommitErrorToEveryone) {
  bool fail_commit = false;
  Combiner combiner([&] {
    if (fail_commit) throw std::runtime_error("disk full");
  });
  EXPECT_THROW(combiner.run([] { throw std::invalid_argument("bad field"); }), std::invalid_argument);
  int value = 0;
  EXPECT_NO_THROW(combiner.run([&] { value = 7; }));
  EXPECT_EQ(value, 7);
  fail_commit = true;
  try {
    combiner.run([] {});
    FAIL() << "expected the commit's error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "disk full");
  }
}

// The event loop queues an operation and goes on: submit() returns before the operation's batch
// is committed, and `done` comes after the commit, on the combiner's thread.
TEST(Combiner, SubmitReturnsAtOnceAndDoneFollowsTheCommit) {
  std::mutex mutex;
  std::condition_variable changed;
  bool commit_may_finish = false, committed = false;
  std::vector<std::string> seen;  // in order
  Combiner combiner([&] {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return commit_may_finish; });
    committed = true;
  });
  int done_calls = 0;
  std::exception_ptr outcome = std::make_exception_ptr(std::runtime_error("not called"));
  combiner.submit([&] { seen.push_back("op"); },
                  [&](std::exception_ptr error) {
                    std::lock_guard<std::mutex> lock(mutex);
                    seen.push_back(committed ? "done after commit" : "done before commit");
                    outcome = error;
                    ++done_calls;
                    changed.notify_all();
                  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    EXPECT_EQ(done_calls, 0);  // the commit is held: submit() returned without waiting for it
    commit_may_finish = true;
    changed.notify_all();
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return done_calls == 1; }));
  }
  EXPECT_EQ(outcome, nullptr);
  EXPECT_EQ(seen, (std::vector<std::string>{"op", "done after commit"}));
}

TEST(SequentialIds, GrowWithTimeAreUniqueAcrossThreadsAndStayAboveLoadedOnes) {
  std::vector<std::thread> threads;
  std::mutex ids_mutex;
  std::set<std::string> ids;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<std::string> mine;
      for (int i = 0; i < 1000; ++i) mine.push_back(sequential_id("rt-"));
      for (std::size_t i = 1; i < mine.size(); ++i) EXPECT_LT(mine[i - 1], mine[i]);  // same length: text order
      std::lock_guard<std::mutex> lock(ids_mutex);
      ids.insert(mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ids.size(), 4000u);
  EXPECT_EQ(ids.begin()->size(), 3u + 13u);
  // An id from a database written while the clock was ahead: new ids continue after it.
  note_existing_id("rt-fffffffffff00");
  EXPECT_EQ(sequential_id("rt-"), "rt-fffffffffff01");
}
