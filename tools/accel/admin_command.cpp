// accel admin user add|list|revoke|rotate-token|set-tier: the service's users and their tokens,
// straight in its database (the daemon may run meanwhile: it asks the database for a token it
// does not know, and forgets known ones after RuntimeService::kUserCacheS seconds, so a revoked
// or rotated token stops working within that time).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>

#include "accel/core/error.h"
#include "accel/runtime/runtime_service.h"
#include "accel/runtime/service_config.h"
#include "accel/runtime/store.h"
#include "accel/runtime/token.h"
#include "commands.h"

namespace accel::cli {
namespace {

struct AdminOptions {
  std::string data_dir = "accel-data";
  std::string config;  // the service's config, for its tiers
  std::string name;
  std::string tier = "free";
  bool admin = false;
};

// Names as POSIX user names: they appear in paths, logs and the API.
void check_name(const std::string& name) {
  static const std::regex valid("[a-z_][a-z0-9_.-]{0,31}");
  if (!std::regex_match(name, valid)) {
    throw ValueError("user name '" + name +
                     "' is not valid: 1-32 characters, lower-case letters, digits, '_', '.', '-', not starting with a "
                     "digit, '.' or '-'");
  }
}

void check_tier(const AdminOptions& o) {
  const runtime::ServiceConfig config =
      o.config.empty() ? runtime::ServiceConfig::defaults() : runtime::ServiceConfig::load(o.config);
  if (config.tiers.count(o.tier)) return;
  std::string known;
  for (const auto& [name, tier] : config.tiers) known += (known.empty() ? "" : ", ") + name;
  throw ValueError("unknown tier '" + o.tier + "' (" + (o.config.empty() ? "the default tiers" : o.config) +
                   " has: " + known + "; pass --config for the service's own tiers)");
}

std::unique_ptr<runtime::Store> open_store(const AdminOptions& o, bool create) {
  const std::string path = o.data_dir + "/service.db";
  if (!create && !std::filesystem::exists(path))
    throw ValueError("no service database at " + path + " (pass --data-dir, the folder accel serve uses)");
  std::filesystem::create_directories(o.data_dir);
  return std::make_unique<runtime::Store>(path);
}

void print_token(const std::string& token, const std::string& what) {
  std::printf("%s\n", token.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "%s; the token above is shown once\n", what.c_str());
}

void no_such_user(const std::string& name) {
  throw ValueError("no user '" + name + "' (accel admin user list shows them)");
}

}  // namespace

void add_admin_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<AdminOptions>();
  CLI::App* admin = app.add_subcommand("admin", "Administer the runtime service");
  admin->require_subcommand(1);
  CLI::App* user = admin->add_subcommand("user", "Users and their tokens")->require_subcommand(1);
  const auto common = [&](CLI::App* cmd, bool named) {
    cmd->add_option("--data-dir", o->data_dir, "The service's data folder")->capture_default_str();
    if (named) cmd->add_option("name", o->name, "User name")->required();
  };

  CLI::App* add = user->add_subcommand("add", "Add a user; prints their token once (only its hash is stored)");
  common(add, true);
  add->add_option("--tier", o->tier, "free, pro, pro_plus, enterprise, or a tier of --config")->capture_default_str();
  add->add_option("--config", o->config, "The service's config, whose tiers are valid");
  add->add_flag("--admin", o->admin, "The token sees and manages every user's runtimes");
  add->callback([o, &exit_code] {
    check_name(o->name);
    check_tier(*o);
    auto store = open_store(*o, true);
    // Runtimes belong to a name: a new user must not inherit a revoked one's runtimes and files.
    for (const auto& doc : store->all("runtimes")) {
      if (doc.value("user", "") == o->name)
        throw ValueError("the name '" + o->name + "' was used before (runtime " + doc.value("id", "?") +
                         " is still recorded under it); pick another name");
    }
    const std::string token = runtime::new_token();
    store->add_user({o->name, o->tier, o->admin}, runtime::hash_token(token));
    print_token(token, "user " + o->name + " (tier " + o->tier + (o->admin ? ", admin" : "") + ") added");
    exit_code = 0;
  });

  CLI::App* list = user->add_subcommand("list", "The users, their tiers and who is admin (never tokens)");
  common(list, false);
  list->callback([o, &exit_code] {
    std::printf("%-32s %-12s %s\n", "NAME", "TIER", "ADMIN");
    for (const runtime::User& u : open_store(*o, false)->users())
      std::printf("%-32s %-12s %s\n", u.name.c_str(), u.tier.c_str(), u.admin ? "yes" : "no");
    exit_code = 0;
  });

  CLI::App* revoke = user->add_subcommand(
      "revoke", "Remove a user: their token stops working (their runtimes run on until an admin deletes them)");
  common(revoke, true);
  revoke->callback([o, &exit_code] {
    if (!open_store(*o, false)->remove_user(o->name)) no_such_user(o->name);
    std::fprintf(stderr, "user %s removed; a running service refuses the token within %g s\n", o->name.c_str(),
                 runtime::RuntimeService::kUserCacheS);
    exit_code = 0;
  });

  CLI::App* rotate = user->add_subcommand("rotate-token", "Give a user a new token; the old one stops working");
  common(rotate, true);
  rotate->callback([o, &exit_code] {
    const std::string token = runtime::new_token();
    if (!open_store(*o, false)->set_user_token_hash(o->name, runtime::hash_token(token))) no_such_user(o->name);
    print_token(token, "new token for " + o->name);
    exit_code = 0;
  });

  CLI::App* set_tier = user->add_subcommand("set-tier", "Move a user to another tier");
  common(set_tier, true);
  set_tier->add_option("tier", o->tier, "The new tier")->required();
  set_tier->add_option("--config", o->config, "The service's config, whose tiers are valid");
  set_tier->callback([o, &exit_code] {
    check_tier(*o);
    if (!open_store(*o, false)->set_user_tier(o->name, o->tier)) no_such_user(o->name);
    std::fprintf(stderr, "user %s is on tier %s (runtimes they create from now on)\n", o->name.c_str(),
                 o->tier.c_str());
    exit_code = 0;
  });
}

}  // namespace accel::cli
