// Placeholder until this group of subcommands is written.
#include "cli/commands.hpp"

namespace provdb::cli {

void AddQueryCommands(CLI::App&, int&) {}

}  // namespace provdb::cli
