#!/usr/bin/env bash
# The main job: installs dependencies and builds (scripts/build.sh), then
# replays a provenance run from the bundled real records with the defaults
# (8 ranks into 4 shards, then the parameter server's global database) into
# provdb-run/, and shows a query to try on the result.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Prints a command as it can be pasted into a shell: arguments other than
# plain words go in single quotes, a single quote inside closed and reopened.
show_command() {
  local line="\$" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,+-]+$ ]]; then
      line+=" $arg"
    else
      line+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  echo "$line"
}

scripts/build.sh

# provdb replay refuses to mix two runs in one directory; this directory is
# the script's own output, so an earlier one is replaced.
if [ -e provdb-run ]; then
  echo "run-main: removing the previous provdb-run/"
  rm -rf provdb-run
fi

build/provdb replay --dir provdb-run

echo
echo "run-main: anomalies of the function with most anomalies, from the files of the run:"
fid="$(build/provdb query --dir provdb-run --global --format csv --fields fid \
  --sql "SELECT fid FROM func_stats
         ORDER BY json_extract(doc, '$.anomaly_metrics.anomaly_count') DESC LIMIT 1" | tail -1)"
query=(build/provdb query --dir provdb-run --format table
  --sql "SELECT io_step, count(*) AS n FROM anomalies WHERE fid = $fid GROUP BY io_step"
  --merge "SELECT io_step, sum(n) AS anomalies FROM result GROUP BY io_step ORDER BY io_step")
echo "run-main: function $fid, per io step:"
show_command "${query[@]}"
"${query[@]}"
