// Entry point of the provdb command: parses the command line and runs one
// subcommand. Errors reaching here are printed as one line and exit with 1.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "common/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"provdb: a provenance database for in-situ performance anomaly detection"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "provdb 0.1.0");

  int exit_code = 0;
  provdb::cli::AddServeCommands(app, exit_code);
  provdb::cli::AddQueryCommands(app, exit_code);
  provdb::cli::AddReplayCommand(app, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const provdb::Error& e) {
    std::fprintf(stderr, "provdb: error (%s): %s\n",
                 std::string(provdb::ErrorCodeName(e.code())).c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "provdb: error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
