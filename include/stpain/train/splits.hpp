#pragma once
// Evaluation protocols: which clips train, validate and test in each fold.
// Every split is drawn from a seeded stpain::Generator, so the same labels,
// subjects and seed give the same folds on every machine. Index lists are
// sorted ascending.
//
// * paper (make_paper_folds): the paper's "80% train / 10% validation /
//   10% test, averaged over 5 folds", clip-level and stratified by label.
//   Each class is shuffled once and cut into K blocks, as StratifiedKFold
//   does; fold k tests on the first test_fraction of the class's clips from
//   the start of block k and validates on the next validation_fraction. With
//   the defaults (K = 5, 10% + 10%) block k is exactly the fold's held-out
//   20%, so the five test parts are disjoint and so are the five validation
//   parts. Test parts are disjoint whenever the numbers allow it (K times a
//   class's test count fits in the class); beyond that they wrap around and
//   overlap, which is the only way to honour a larger test_fraction. One
//   subject's clips can land in train and test: that is the paper's protocol,
//   reproduced for comparison, not recommended.
// * subject (make_subject_folds, the project's default): subject-independent
//   grouped K-fold. Subjects are dealt into K groups greedily (largest first)
//   so each group holds ~1/K of every class; fold k tests on group k and
//   validates on whole subjects from the other groups (~validation_fraction
//   of all clips, label ratio kept close to the rest); no subject is in two
//   parts of a fold, which check_fold asserts before the folds are returned.
// * train_test_split: one ratio split (stratified or not), and
//   repeated_train_test_splits for the landmark pipeline's "80/20 split,
//   5 repeated runs" (seeds seed, seed + 1, ...; empty validation).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/core/random.hpp"

namespace stpain {

// Clip indices of one fold.
struct Fold {
  std::vector<int64_t> train, validation, test;
};

enum class Protocol { paper, subject };

inline const char* protocol_name(Protocol p) { return p == Protocol::paper ? "paper" : "subject"; }

// "paper" or "subject" (as typed on a command line).
inline Protocol parse_protocol(std::string_view name) {
  if (name == "paper") return Protocol::paper;
  if (name == "subject") return Protocol::subject;
  throw Error("unknown evaluation protocol \"" + std::string(name) +
              "\": expected \"subject\" (subject-independent folds) or \"paper\" (clip-level stratified folds)");
}

struct FoldOptions {
  int64_t folds = 5;
  double test_fraction = 0.1;        // paper protocol; the subject protocol tests on one group of subjects (~1/folds)
  double validation_fraction = 0.1;  // of all clips, both protocols; 0 leaves validation empty
  uint64_t seed = 42;
};

namespace detail {

inline void check_split_inputs(std::span<const int64_t> labels, const char* op) {
  STPAIN_CHECK(!labels.empty(), Error, op, ": no clips");
  for (size_t i = 0; i < labels.size(); ++i)
    STPAIN_CHECK(labels[i] >= 0, Error, op, ": label ", labels[i], " of clip ", i, " is negative");
}

inline void check_fold_options(const FoldOptions& o, const char* op) {
  STPAIN_CHECK(o.folds >= 2, Error, op, ": needs at least 2 folds, got ", o.folds);
  STPAIN_CHECK(o.test_fraction > 0 && o.test_fraction < 1, Error, op, ": test_fraction must be in (0, 1), got ",
               o.test_fraction);
  STPAIN_CHECK(o.validation_fraction >= 0 && o.validation_fraction < 1, Error, op,
               ": validation_fraction must be in [0, 1), got ", o.validation_fraction);
}

// Clip indices of each label, in index order; labels[i] indexes the result.
inline std::vector<std::vector<int64_t>> clips_by_class(std::span<const int64_t> labels) {
  const int64_t classes = *std::max_element(labels.begin(), labels.end()) + 1;
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(classes));
  for (size_t i = 0; i < labels.size(); ++i) by_class[static_cast<size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  return by_class;
}

// At least one clip of a class for any positive fraction, so a small class
// is still present in every part.
inline int64_t share_of(int64_t count, double fraction) {
  if (fraction <= 0) return 0;
  return std::max<int64_t>(1, std::llround(static_cast<double>(count) * fraction));
}

inline void sort_fold(Fold& f) {
  std::sort(f.train.begin(), f.train.end());
  std::sort(f.validation.begin(), f.validation.end());
  std::sort(f.test.begin(), f.test.end());
}

}  // namespace detail

// Throws Error when a fold uses an index outside [0, clips), uses one twice,
// has an empty train or test part, or (given subjects) puts one subject in
// two of its parts.
inline void check_fold(const Fold& fold, int64_t clips, std::span<const int64_t> subjects = {}) {
  STPAIN_CHECK(subjects.empty() || static_cast<int64_t>(subjects.size()) == clips, ShapeError,
               "check_fold: ", subjects.size(), " subject ids for ", clips, " clips");
  STPAIN_CHECK(!fold.train.empty() && !fold.test.empty(), Error, "check_fold: empty part (train ", fold.train.size(),
               " clips, test ", fold.test.size(), ")");
  std::vector<int> part_of(static_cast<size_t>(clips), -1);
  std::map<int64_t, int> subject_part;
  const char* names[] = {"train", "validation", "test"};
  const std::vector<int64_t>* parts[] = {&fold.train, &fold.validation, &fold.test};
  for (int p = 0; p < 3; ++p) {
    for (int64_t i : *parts[p]) {
      STPAIN_CHECK(i >= 0 && i < clips, Error, "check_fold: clip index ", i, " in ", names[p], " is outside [0, ",
                   clips, ")");
      const auto u = static_cast<size_t>(i);
      STPAIN_CHECK(part_of[u] < 0, Error, "check_fold: clip ", i, " is in ", names[p], " and already in ",
                   names[part_of[u]]);
      part_of[u] = p;
      if (subjects.empty()) continue;
      auto [it, inserted] = subject_part.emplace(subjects[u], p);
      STPAIN_CHECK(inserted || it->second == p, Error, "check_fold: subject ", subjects[u], " (clip ", i, ") is in ",
                   names[it->second], " and ", names[p]);
    }
  }
}

// The paper's protocol: stratified clip-level folds, see the top of the file.
inline std::vector<Fold> make_paper_folds(std::span<const int64_t> labels, const FoldOptions& options = {}) {
  detail::check_split_inputs(labels, "make_paper_folds");
  detail::check_fold_options(options, "make_paper_folds");
  const int64_t k_folds = options.folds;
  auto by_class = detail::clips_by_class(labels);
  Generator gen(options.seed);
  std::vector<Fold> folds(static_cast<size_t>(k_folds));
  for (size_t c = 0; c < by_class.size(); ++c) {
    auto& clips = by_class[c];
    const auto n = static_cast<int64_t>(clips.size());
    if (n == 0) continue;  // a label value nobody has
    const int64_t n_test = detail::share_of(n, options.test_fraction);
    const int64_t n_val = detail::share_of(n, options.validation_fraction);
    STPAIN_CHECK(n >= k_folds && n_test + n_val < n, Error, "make_paper_folds: class ", c, " has ", n,
                 " clips; stratified ", k_folds, "-fold splits with ", n_test, " test and ", n_val,
                 " validation clips of it per fold need at least ", std::max(k_folds, n_test + n_val + 1));
    gen.shuffle(clips);
    for (int64_t k = 0; k < k_folds; ++k) {
      Fold& f = folds[static_cast<size_t>(k)];
      const int64_t start = k * n / k_folds;
      std::vector<bool> held(static_cast<size_t>(n), false);
      for (int64_t j = 0; j < n_test + n_val; ++j) {
        const auto pos = static_cast<size_t>((start + j) % n);
        held[pos] = true;
        (j < n_test ? f.test : f.validation).push_back(clips[pos]);
      }
      for (int64_t j = 0; j < n; ++j)
        if (!held[static_cast<size_t>(j)]) f.train.push_back(clips[static_cast<size_t>(j)]);
    }
  }
  for (auto& f : folds) {
    detail::sort_fold(f);
    check_fold(f, static_cast<int64_t>(labels.size()));
  }
  return folds;
}

// Subject-independent grouped folds, see the top of the file. subjects[i] is
// any id of clip i's subject (they need not be contiguous).
inline std::vector<Fold> make_subject_folds(std::span<const int64_t> labels, std::span<const int64_t> subjects,
                                            const FoldOptions& options = {}) {
  detail::check_split_inputs(labels, "make_subject_folds");
  detail::check_fold_options(options, "make_subject_folds");
  STPAIN_CHECK(labels.size() == subjects.size(), ShapeError, "make_subject_folds: ", labels.size(), " labels but ",
               subjects.size(), " subject ids");
  const int64_t k_folds = options.folds;
  const auto k = static_cast<size_t>(k_folds);
  const size_t classes = static_cast<size_t>(*std::max_element(labels.begin(), labels.end()) + 1);

  struct Subject {
    int64_t id = 0;
    std::vector<int64_t> clips;
    std::vector<int64_t> per_class;
  };
  std::map<int64_t, size_t> slot;
  std::vector<Subject> people;
  std::vector<int64_t> class_total(classes, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    auto [it, fresh] = slot.emplace(subjects[i], people.size());
    if (fresh) people.push_back({subjects[i], {}, std::vector<int64_t>(classes, 0)});
    Subject& s = people[it->second];
    s.clips.push_back(static_cast<int64_t>(i));
    ++s.per_class[static_cast<size_t>(labels[i])];
    ++class_total[static_cast<size_t>(labels[i])];
  }
  const auto n_subjects = static_cast<int64_t>(people.size());
  STPAIN_CHECK(n_subjects >= k_folds, Error, "make_subject_folds: ", n_subjects, " subjects cannot make ", k_folds,
               " subject-independent folds (each fold tests on at least one subject)");
  const auto n_clips = static_cast<double>(labels.size());

  // Deal subjects into groups: largest first (ties in seeded random order),
  // each to the group where it adds least to the squared deviation of every
  // class's share and of the clip share from 1/K. An empty group always wins
  // (its shares are the smallest), so every group gets a subject.
  Generator gen(options.seed);
  std::vector<size_t> order(people.size());
  std::iota(order.begin(), order.end(), size_t{0});
  gen.shuffle(order);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return people[a].clips.size() > people[b].clips.size(); });
  std::vector<std::vector<int64_t>> group_class(k, std::vector<int64_t>(classes, 0));
  std::vector<int64_t> group_size(k, 0);
  std::vector<std::vector<size_t>> group_members(k);
  const double ideal = 1.0 / static_cast<double>(k_folds);
  auto added_deviation = [&](double before, double added) {
    const double after = before + added;
    return (after - ideal) * (after - ideal) - (before - ideal) * (before - ideal);
  };
  for (size_t s : order) {
    size_t best = 0;
    double best_cost = 0;
    for (size_t g = 0; g < k; ++g) {
      double cost = added_deviation(static_cast<double>(group_size[g]) / n_clips,
                                    static_cast<double>(people[s].clips.size()) / n_clips);
      for (size_t c = 0; c < classes; ++c)
        if (class_total[c] > 0)
          cost += added_deviation(static_cast<double>(group_class[g][c]) / static_cast<double>(class_total[c]),
                                  static_cast<double>(people[s].per_class[c]) / static_cast<double>(class_total[c]));
      if (g == 0 || cost < best_cost - 1e-12 ||
          (cost < best_cost + 1e-12 && group_members[g].size() < group_members[best].size())) {
        best = g;
        best_cost = cost;
      }
    }
    group_members[best].push_back(s);
    group_size[best] += static_cast<int64_t>(people[s].clips.size());
    for (size_t c = 0; c < classes; ++c) group_class[best][c] += people[s].per_class[c];
  }

  std::vector<size_t> group_of(people.size());
  for (size_t g = 0; g < k; ++g)
    for (size_t s : group_members[g]) group_of[s] = g;

  const double val_target = options.validation_fraction * n_clips;
  std::vector<Fold> folds(k);
  for (size_t fk = 0; fk < k; ++fk) {
    Fold& f = folds[fk];
    std::vector<size_t> pool;
    std::vector<int64_t> pool_class(classes, 0);
    int64_t pool_size = 0;
    for (size_t s = 0; s < people.size(); ++s) {
      if (group_of[s] == fk) {
        f.test.insert(f.test.end(), people[s].clips.begin(), people[s].clips.end());
        continue;
      }
      pool.push_back(s);
      pool_size += static_cast<int64_t>(people[s].clips.size());
      for (size_t c = 0; c < classes; ++c) pool_class[c] += people[s].per_class[c];
    }
    const bool want_validation = options.validation_fraction > 0;
    STPAIN_CHECK(pool.size() >= (want_validation ? 2u : 1u), Error, "make_subject_folds: fold ", fk, " leaves ",
                 pool.size(), " subject(s) of ", n_subjects, " outside its test group, too few for",
                 want_validation ? " validation and training" : " training", " (use fewer folds or more subjects)");
    gen.shuffle(pool);

    // Validation: whole subjects, greedily, each step taking the subject that
    // keeps the part's size nearest the target and its label ratio nearest
    // the pool's; stop when one more subject would move away from the target.
    std::vector<int64_t> val_class(classes, 0);
    int64_t val_size = 0;
    auto cost_with = [&](const Subject& s) {
      const auto size = static_cast<double>(val_size + static_cast<int64_t>(s.clips.size()));
      double cost = std::fabs(size - val_target) / std::max(val_target, 1.0);
      for (size_t c = 0; c < classes; ++c)
        cost += std::fabs(static_cast<double>(val_class[c] + s.per_class[c]) / size -
                          static_cast<double>(pool_class[c]) / static_cast<double>(pool_size));
      return cost;
    };
    while (want_validation && pool.size() > 1 && static_cast<double>(val_size) < val_target) {
      size_t best = 0;
      for (size_t j = 1; j < pool.size(); ++j)
        if (cost_with(people[pool[j]]) < cost_with(people[pool[best]])) best = j;
      const Subject& s = people[pool[best]];
      const double after = static_cast<double>(val_size + static_cast<int64_t>(s.clips.size()));
      if (val_size > 0 && std::fabs(after - val_target) > std::fabs(static_cast<double>(val_size) - val_target)) break;
      f.validation.insert(f.validation.end(), s.clips.begin(), s.clips.end());
      val_size += static_cast<int64_t>(s.clips.size());
      for (size_t c = 0; c < classes; ++c) val_class[c] += s.per_class[c];
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(best));
    }
    for (size_t s : pool) f.train.insert(f.train.end(), people[s].clips.begin(), people[s].clips.end());
    detail::sort_fold(f);
    check_fold(f, static_cast<int64_t>(labels.size()), subjects);  // the protocol's promise: no subject leaks
  }
  return folds;
}

// Either protocol; subjects may be empty for the paper protocol.
inline std::vector<Fold> make_folds(Protocol protocol, std::span<const int64_t> labels,
                                    std::span<const int64_t> subjects, const FoldOptions& options = {}) {
  return protocol == Protocol::paper ? make_paper_folds(labels, options)
                                     : make_subject_folds(labels, subjects, options);
}

struct TrainTestOptions {
  double test_fraction = 0.2;
  uint64_t seed = 42;
  bool stratify = true;  // keep each class's ratio in both parts
};

struct TrainTest {
  std::vector<int64_t> train, test;
};

// One split: ceil(test_fraction * clips) test clips (sklearn's rounding).
// Stratified, each class gets its proportional share of the test part
// (largest remainders get the leftover clips) and keeps at least one clip
// in train, so each class needs at least 2 clips.
inline TrainTest train_test_split(std::span<const int64_t> labels, const TrainTestOptions& options = {}) {
  detail::check_split_inputs(labels, "train_test_split");
  STPAIN_CHECK(options.test_fraction > 0 && options.test_fraction < 1, Error,
               "train_test_split: test_fraction must be in (0, 1), got ", options.test_fraction);
  const auto n = static_cast<int64_t>(labels.size());
  const auto n_test = static_cast<int64_t>(std::ceil(options.test_fraction * static_cast<double>(n) - 1e-9));
  STPAIN_CHECK(n_test >= 1 && n_test < n, Error, "train_test_split: ", n, " clips with test_fraction ",
               options.test_fraction, " give ", n_test, " test and ", n - n_test, " train clips; both need one");
  Generator gen(options.seed);
  TrainTest out;
  if (!options.stratify) {
    const std::vector<int64_t> order = gen.permutation(n);
    out.test.assign(order.begin(), order.begin() + n_test);
    out.train.assign(order.begin() + n_test, order.end());
  } else {
    auto by_class = detail::clips_by_class(labels);
    const size_t classes = by_class.size();
    std::vector<int64_t> take(classes, 0);
    std::vector<double> remainder(classes, -1.0);
    int64_t given = 0;
    for (size_t c = 0; c < classes; ++c) {
      const auto nc = static_cast<int64_t>(by_class[c].size());
      if (nc == 0) continue;
      STPAIN_CHECK(nc >= 2, Error, "train_test_split: class ", c, " has ", nc,
                   " clip; a stratified split needs at least 2 of each class");
      const double exact = static_cast<double>(nc) * static_cast<double>(n_test) / static_cast<double>(n);
      take[c] = std::min<int64_t>(static_cast<int64_t>(std::floor(exact)), nc - 1);
      remainder[c] = exact - static_cast<double>(take[c]);
      given += take[c];
    }
    std::vector<size_t> by_remainder(classes);
    std::iota(by_remainder.begin(), by_remainder.end(), size_t{0});
    std::stable_sort(by_remainder.begin(), by_remainder.end(),
                     [&](size_t a, size_t b) { return remainder[a] > remainder[b]; });
    // Leftover clips go by largest remainder, to classes with room in train.
    for (bool progress = true; given < n_test && progress;) {
      progress = false;
      for (size_t c : by_remainder) {
        if (given == n_test) break;
        if (by_class[c].empty() || take[c] >= static_cast<int64_t>(by_class[c].size()) - 1) continue;
        ++take[c];
        ++given;
        progress = true;
      }
    }
    for (size_t c = 0; c < classes; ++c) {
      gen.shuffle(by_class[c]);
      const auto cut = by_class[c].begin() + take[c];
      out.test.insert(out.test.end(), by_class[c].begin(), cut);
      out.train.insert(out.train.end(), cut, by_class[c].end());
    }
  }
  std::sort(out.train.begin(), out.train.end());
  std::sort(out.test.begin(), out.test.end());
  return out;
}

// The landmark pipeline's protocol: `repeats` independent splits with seeds
// seed, seed + 1, ..., as folds with an empty validation part.
inline std::vector<Fold> repeated_train_test_splits(std::span<const int64_t> labels, int64_t repeats,
                                                    const TrainTestOptions& options = {}) {
  STPAIN_CHECK(repeats >= 1, Error, "repeated_train_test_splits: repeats must be at least 1, got ", repeats);
  std::vector<Fold> folds;
  for (int64_t r = 0; r < repeats; ++r) {
    TrainTestOptions o = options;
    o.seed = options.seed + static_cast<uint64_t>(r);
    TrainTest s = train_test_split(labels, o);
    folds.push_back({std::move(s.train), {}, std::move(s.test)});
  }
  return folds;
}

// One line for logs: "train 217 [54 163] | validation 27 [7 20] | test 28 [7 21]"
// (clip counts, then per label).
inline std::string describe_fold(const Fold& fold, std::span<const int64_t> labels) {
  const size_t classes =
      labels.empty() ? 0 : static_cast<size_t>(*std::max_element(labels.begin(), labels.end()) + 1);
  auto part = [&](const char* name, const std::vector<int64_t>& idx) {
    std::vector<int64_t> per(classes, 0);
    for (int64_t i : idx) ++per[static_cast<size_t>(labels[static_cast<size_t>(i)])];
    std::string s = std::string(name) + " " + std::to_string(idx.size()) + " [";
    for (size_t c = 0; c < classes; ++c) s += (c ? " " : "") + std::to_string(per[c]);
    return s + "]";
  };
  return part("train", fold.train) + " | " + part("validation", fold.validation) + " | " + part("test", fold.test);
}

}  // namespace stpain
