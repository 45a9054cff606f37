// The subcommands of the provdb command line, each group in its own file.
// Every function adds its subcommands to the application; the callback it
// installs runs the command and returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace provdb::cli {

// serve, stop, status
void AddServeCommands(CLI::App& app, int& exit_code);
// query, import, export
void AddQueryCommands(CLI::App& app, int& exit_code);
// replay
void AddReplayCommand(CLI::App& app, int& exit_code);

}  // namespace provdb::cli
