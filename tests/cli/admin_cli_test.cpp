// accel admin user add|list|revoke|rotate-token|set-tier, through the command as an operator
// runs it, checked against the database's own token lookup.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../support/command.h"
#include "accel/runtime/store.h"
#include "accel/runtime/token.h"

using accel::testing::run_command;

namespace {

class AdminCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("accel_admin_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  accel::testing::CommandResult admin(const std::string& args) {
    return run_command(std::string(ACCEL_CLI_PATH) + " admin user " + args + " --data-dir " + dir_.string());
  }
  // The token is the first line of the output (stdout; the note goes to stderr after it).
  static std::string token_of(const accel::testing::CommandResult& r) {
    return r.output.substr(0, r.output.find('\n'));
  }
  std::optional<accel::runtime::User> user_of(const std::string& token) {
    accel::runtime::Store store((dir_ / "service.db").string());
    return store.user_by_token_hash(accel::runtime::hash_token(token));
  }

  std::filesystem::path dir_;
};

}  // namespace

TEST_F(AdminCli, NamesAndTiersAreValidated) {
  for (const std::string& bad :
       std::vector<std::string>{"''", "Alice", "'bob smith'", "'.hidden'", "../etc", std::string(33, 'a')}) {
    const auto r = admin("add " + bad);
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_NE(r.output.find("is not valid"), std::string::npos) << bad << ": " << r.output;
  }
  const auto r = admin("add carol --tier platinum");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("unknown tier 'platinum'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("enterprise"), std::string::npos) << r.output;           // the valid ones are named
  EXPECT_NE(admin("list").output.find("no service database"), std::string::npos);  // nothing was created
}

TEST_F(AdminCli, ListRotateSetTierAndRevoke) {
  const auto added = admin("add alice --tier pro");
  ASSERT_EQ(added.status, 0) << added.output;
  const std::string first = token_of(added);
  ASSERT_TRUE(user_of(first).has_value());
  EXPECT_EQ(user_of(first)->tier, "pro");

  auto listed = admin("list");
  EXPECT_EQ(listed.status, 0);
  EXPECT_NE(listed.output.find("alice"), std::string::npos) << listed.output;
  EXPECT_EQ(listed.output.find(first), std::string::npos) << "list shows tokens";

  const auto rotated = admin("rotate-token alice");
  ASSERT_EQ(rotated.status, 0) << rotated.output;
  const std::string second = token_of(rotated);
  EXPECT_NE(second, first);
  EXPECT_FALSE(user_of(first).has_value()) << "the old token still works";
  ASSERT_TRUE(user_of(second).has_value());

  EXPECT_EQ(admin("set-tier alice enterprise").status, 0);
  EXPECT_EQ(user_of(second)->tier, "enterprise");
  EXPECT_NE(admin("set-tier alice gold").output.find("unknown tier 'gold'"), std::string::npos);
  EXPECT_NE(admin("set-tier nobody-here pro").output.find("no user 'nobody-here'"), std::string::npos);

  EXPECT_EQ(admin("revoke alice").status, 0);
  EXPECT_FALSE(user_of(second).has_value());
  const auto again = admin("revoke alice");
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.output.find("no user 'alice'"), std::string::npos) << again.output;
}
