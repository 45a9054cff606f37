// Running statistics of a series of numbers (count, mean, standard deviation,
// extremes, skewness, kurtosis and sum), updated one value at a time and
// mergeable, so that each simulated rank keeps its own and the parameter
// server combines them, as the anomaly-detection processes of a real run do.
// A RunStats is a plain value: not safe to update from two threads at once.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace provdb::cli {

class RunStats {
 public:
  void push(double x);
  // Adds every value seen by `other`, as if they had been pushed here.
  void merge(const RunStats& other);

  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  double sum() const { return sum_; }
  double minimum() const { return min_; }
  double maximum() const { return max_; }
  // Sample standard deviation (divides by count - 1); 0 below two values.
  double stddev() const;
  // Moment skewness; 0 when every value is the same.
  double skewness() const;
  // Excess kurtosis (0 for a normal distribution); 0 when every value is the same.
  double kurtosis() const;

  // The statistics object of the global database: accumulate (the sum),
  // count, kurtosis, maximum, mean, minimum, skewness, stddev, as in the
  // func_stats objects the anomaly-detection processes write.
  nlohmann::json ToJson() const;

 private:
  int64_t count_ = 0;
  double mean_ = 0;
  // Sums of the 2nd, 3rd and 4th powers of the deviations from the mean,
  // kept with the update formulas that stay accurate for long series.
  double m2_ = 0;
  double m3_ = 0;
  double m4_ = 0;
  double sum_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace provdb::cli
