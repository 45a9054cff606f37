// Instance placement from the environment of MPI launchers and Slurm, so that
// `mpirun -n M provdb serve` or `srun provdb serve` spread instances by rank.
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "server/server.hpp"

namespace provdb::server {

namespace {

bool ReadInt(const char* name, int& value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return false;
  try {
    value = std::stoi(text);
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("environment variable ") + name + "='" + text +
                    "' is not an integer; pass --instance and --instances");
  }
  return true;
}

}  // namespace

bool InstanceFromEnvironment(int& instance, int& num_instances) {
  struct Source {
    const char* rank;
    const char* sizes[3];
  };
  static constexpr Source kSources[] = {
      {"OMPI_COMM_WORLD_RANK", {"OMPI_COMM_WORLD_SIZE", nullptr, nullptr}},
      {"PMIX_RANK", {"PMIX_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"}},
      {"PMI_RANK", {"PMI_SIZE", nullptr, nullptr}},
      {"SLURM_PROCID", {"SLURM_NTASKS", "SLURM_NPROCS", nullptr}},
  };

  for (const auto& source : kSources) {
    int rank = 0;
    if (!ReadInt(source.rank, rank)) continue;

    for (const char* size_var : source.sizes) {
      int size = 0;
      if (size_var != nullptr && ReadInt(size_var, size)) {
        instance = rank;
        num_instances = size;
        return true;
      }
    }
    throw Error(ErrorCode::kInvalidArgument,
                std::string(source.rank) +
                    " is set but no matching size variable is; pass --instance and --instances");
  }
  return false;
}

}  // namespace provdb::server
