// Running statistics: one-pass update and pairwise merge of the central
// moments (the formulas of Chan, Golub and LeVeque, extended by Pebay to the
// third and fourth moments).
#include "cli/run_stats.hpp"

#include <algorithm>
#include <cmath>

namespace provdb::cli {

void RunStats::push(double x) {
  RunStats one;
  one.count_ = 1;
  one.mean_ = x;
  one.sum_ = x;
  one.min_ = x;
  one.max_ = x;
  merge(one);
}

void RunStats::merge(const RunStats& other) {
  if (other.count_ == 0) return;
  if (count_ == 0) {
    *this = other;
    return;
  }

  const double na = static_cast<double>(count_);
  const double nb = static_cast<double>(other.count_);
  const double n = na + nb;
  const double delta = other.mean_ - mean_;
  const double delta2 = delta * delta;

  const double m2 = m2_ + other.m2_ + delta2 * na * nb / n;
  const double m3 = m3_ + other.m3_ + delta * delta2 * na * nb * (na - nb) / (n * n) +
                    3.0 * delta * (na * other.m2_ - nb * m2_) / n;
  const double m4 = m4_ + other.m4_ +
                    delta2 * delta2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n) +
                    6.0 * delta2 * (na * na * other.m2_ + nb * nb * m2_) / (n * n) +
                    4.0 * delta * (na * other.m3_ - nb * m3_) / n;

  mean_ += delta * nb / n;
  m2_ = m2;
  m3_ = m3;
  m4_ = m4;
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

double RunStats::stddev() const {
  if (count_ < 2) return 0;
  return std::sqrt(m2_ / static_cast<double>(count_ - 1));
}

double RunStats::skewness() const {
  // Rounding leaves a tiny m2 for constant series; treat it as zero spread.
  if (count_ < 2 || m2_ <= 1e-12 * std::max(1.0, mean_ * mean_)) return 0;
  return std::sqrt(static_cast<double>(count_)) * m3_ / std::pow(m2_, 1.5);
}

double RunStats::kurtosis() const {
  if (count_ < 2 || m2_ <= 1e-12 * std::max(1.0, mean_ * mean_)) return 0;
  return static_cast<double>(count_) * m4_ / (m2_ * m2_) - 3.0;
}

nlohmann::json RunStats::ToJson() const {
  return {{"accumulate", sum_},  {"count", count_},       {"kurtosis", kurtosis()},
          {"maximum", max_},     {"mean", mean_},         {"minimum", min_},
          {"skewness", skewness()}, {"stddev", stddev()}};
}

}  // namespace provdb::cli
