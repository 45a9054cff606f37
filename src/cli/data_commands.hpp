// Subcommands that move records in and out of a database directory, added
// to the application by AddQueryCommands next to query.
#pragma once

#include <CLI/CLI.hpp>

namespace provdb::cli {

void AddImportCommand(CLI::App& app, int& exit_code);
void AddExportCommand(CLI::App& app, int& exit_code);

// Whether standard output is a terminal (tables for people, JSON lines for
// pipes).
bool StdoutIsTerminal();

}  // namespace provdb::cli
