#pragma once
/// Planning: find a path between two nodes of a small undirected graph whose edges the prompt lists.
///
///   prompt     "ab,bf,cf,bd,de,ae,eg,cg,fh,hi;a>g:"          edges, then source > goal
///   response   "a:be,b:df,e:g ok;g<e<a;check ae eg;path aeg"  then EOS
///
/// Problems: `nodes` nodes labelled 'a', 'b', ...; a random spanning tree plus `extra_edges` random
/// edges (so there are cycles and several paths), listed in random order, each as two letters in random
/// order; source and goal at least `min_distance` edges apart. Split key: the sorted edge set, source, goal.
///
/// Solution writer: a breadth-first search from the source, neighbours in alphabetical order: one
/// expansion "u:<newly discovered nodes>" per dequeued node ("u:-" when none), until the goal is
/// discovered (" ok"); then the walk back from the goal to the source along the nodes that discovered
/// each one ("g<e<a": each step reads an earlier expansion); a check that lists the path's edges
/// ("check ae eg"); then "path " and the path's letters (a shortest path). The generator keeps problems
/// whose search writes at least `min_expanded` expansions.
///
/// Verifier: reward 1 when the text after the last "path " is a sequence of distinct node letters
/// from the source to the goal whose consecutive pairs are listed edges (any simple path, not only a
/// shortest one); 0 otherwise.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"

namespace grpo::planning {

/// Difficulty knobs.
struct params {
  int nodes = 10;         ///< 3 to 26
  int extra_edges = 4;    ///< edges beyond the spanning tree
  int min_distance = 3;   ///< shortest path from source to goal, in edges
  int min_expanded = 8;   ///< expansions the writer's breadth-first search must write
};

/// Level 0: 10 nodes; level 1: 12 nodes, goal 4 edges away; level 2: 16 nodes, goal 5 edges away.
inline params params_for_level(int level) {
  switch (level) {
    case 0: return {10, 4, 3, 8};
    case 1: return {12, 5, 4, 8};
    case 2: return {16, 6, 5, 10};
    default: throw std::invalid_argument("planning: difficulty level " + std::to_string(level) + " outside [0, 2]");
  }
}

struct instance {
  int nodes = 0;
  std::vector<std::pair<char, char>> edges;  ///< as listed in the prompt
  char source = 'a', goal = 'a';

  bool has_edge(char u, char v) const {
    return std::any_of(edges.begin(), edges.end(),
                       [&](const auto& e) { return (e.first == u && e.second == v) || (e.first == v && e.second == u); });
  }
  /// Neighbours of u in alphabetical order.
  std::vector<char> neighbours(char u) const {
    std::vector<char> out;
    for (const auto& [x, y] : edges)
      if (x == u || y == u) out.push_back(x == u ? y : x);
    std::sort(out.begin(), out.end());
    return out;
  }
};

/// "ab,bf,...;a>c:"
inline std::string prompt_of(const instance& p) {
  std::string s;
  for (const auto& [u, v] : p.edges) s += (s.empty() ? "" : ",") + std::string{u, v};
  return s + ";" + p.source + ">" + p.goal + ":";
}

/// The graph up to the order of its edges and of each edge's letters.
inline std::string canonical_key(const instance& p) {
  std::vector<std::string> edges;
  for (const auto& [u, v] : p.edges) edges.push_back(u < v ? std::string{u, v} : std::string{v, u});
  std::sort(edges.begin(), edges.end());
  std::string key = "planning:";
  for (const auto& e : edges) key += e + ",";
  return key + p.source + ">" + p.goal;
}

/// Edges on a shortest path from `from` to every node (-1 when unreachable).
inline std::vector<int> distances(const instance& p, char from) {
  std::vector<int> dist(static_cast<std::size_t>(p.nodes), -1);
  std::deque<char> queue{from};
  dist[static_cast<std::size_t>(from - 'a')] = 0;
  while (!queue.empty()) {
    const char u = queue.front();
    queue.pop_front();
    for (const char v : p.neighbours(u))
      if (dist[static_cast<std::size_t>(v - 'a')] < 0)
        dist[static_cast<std::size_t>(v - 'a')] = dist[static_cast<std::size_t>(u - 'a')] + 1, queue.push_back(v);
  }
  return dist;
}

/// The writer's breadth-first search from the source, neighbours in alphabetical order, until the goal is
/// discovered: one expansion "u:<newly discovered neighbours>" ("u:-" when none) per dequeued node, the
/// last closed by " ok"; parent[v] is the node whose expansion discovered v.
struct search_result {
  std::vector<std::string> expansions;
  std::vector<char> parent;  ///< indexed by node - 'a'; 0 for the source and undiscovered nodes
  std::string path;          ///< source ... goal along the parents (a shortest path)
};

inline search_result breadth_first_search(const instance& p) {
  search_result r;
  r.parent.assign(static_cast<std::size_t>(p.nodes), 0);
  std::vector<bool> seen(static_cast<std::size_t>(p.nodes), false);
  std::deque<char> queue{p.source};
  seen[static_cast<std::size_t>(p.source - 'a')] = true;
  bool found = p.source == p.goal;
  while (!queue.empty() && !found) {
    const char u = queue.front();
    queue.pop_front();
    std::string discovered;
    for (const char v : p.neighbours(u))
      if (!seen[static_cast<std::size_t>(v - 'a')] && !found) {
        seen[static_cast<std::size_t>(v - 'a')] = true;
        r.parent[static_cast<std::size_t>(v - 'a')] = u;
        discovered.push_back(v);
        queue.push_back(v);
        found = v == p.goal;
      }
    r.expansions.push_back(std::string{u, ':'} + (discovered.empty() ? "-" : discovered) + (found ? " ok" : ""));
  }
  for (char v = p.goal; v; v = r.parent[static_cast<std::size_t>(v - 'a')]) r.path.insert(r.path.begin(), v);
  if (r.path.front() != p.source) r.path.clear();  // unreachable (generated problems never are)
  return r;
}

inline std::string reference_answer(const instance& p) { return breadth_first_search(p).path; }

/// A problem of split `s`: deterministic in the state of `rng`.
inline instance generate(std::mt19937_64& rng, split s, const params& prm) {
  if (prm.nodes < 3 || prm.nodes > 26 || prm.min_distance < 1 || prm.min_distance >= prm.nodes)
    throw std::invalid_argument("planning: nodes in [3, 26] and min_distance in [1, nodes)");
  const auto n = static_cast<std::int64_t>(prm.nodes);
  const std::int64_t max_extra = n * (n - 1) / 2 - (n - 1);
  for (;;) {
    instance p;
    p.nodes = prm.nodes;
    std::vector<char> order;
    for (int i = 0; i < prm.nodes; ++i) order.push_back(static_cast<char>('a' + i));
    shuffle(rng, order);
    auto node = [&](std::int64_t lo, std::int64_t hi) { return order[static_cast<std::size_t>(uniform_int(rng, lo, hi))]; };
    for (std::int64_t i = 1; i < n; ++i)  // spanning tree: each node joins an earlier one
      p.edges.emplace_back(order[static_cast<std::size_t>(i)], node(0, i - 1));
    for (std::int64_t added = 0; added < std::min<std::int64_t>(prm.extra_edges, max_extra);) {
      const char u = node(0, n - 1), v = node(0, n - 1);
      if (u != v && !p.has_edge(u, v)) p.edges.emplace_back(u, v), ++added;
    }
    shuffle(rng, p.edges);
    for (auto& e : p.edges)
      if (uniform_int(rng, 0, 1)) std::swap(e.first, e.second);
    p.source = static_cast<char>('a' + uniform_int(rng, 0, n - 1));
    std::vector<char> far;
    const auto dist = distances(p, p.source);
    for (std::int64_t i = 0; i < n; ++i)
      if (dist[static_cast<std::size_t>(i)] >= prm.min_distance) far.push_back(static_cast<char>('a' + i));
    if (far.empty()) continue;
    p.goal = far[static_cast<std::size_t>(uniform_int(rng, 0, std::int64_t(far.size()) - 1))];
    if (static_cast<int>(breadth_first_search(p).expansions.size()) < prm.min_expanded) continue;
    if (split_of(canonical_key(p)) == s) return p;
  }
}

/// The expansions, comma-separated; the walk back from the goal along the parents ("k<d<b<a"); the
/// path's edges as a check ("check ab bd dk"); then "path <letters>". Deterministic.
inline std::string write_solution(const instance& p, std::mt19937_64& /*rng*/, const params& /*prm*/) {
  const auto search = breadth_first_search(p);
  std::string text;
  for (const auto& e : search.expansions) text += (text.empty() ? "" : ",") + e;
  text += ";";
  for (auto it = search.path.rbegin(); it != search.path.rend(); ++it)
    text += (it == search.path.rbegin() ? "" : "<") + std::string{*it};
  text += ";check";
  for (std::size_t i = 1; i < search.path.size(); ++i) text += std::string{' ', search.path[i - 1], search.path[i]};
  return text + ";path " + search.path;
}

/// 1 when the text after the last "path " is a simple path of listed edges from source to goal, else 0.
inline float verify(const instance& p, std::string_view response) {
  const auto answer = final_answer(response, "path ");
  if (!answer || answer->size() < 2 || answer->front() != p.source || answer->back() != p.goal) return 0.0f;
  std::vector<bool> seen(static_cast<std::size_t>(p.nodes), false);
  for (std::size_t i = 0; i < answer->size(); ++i) {
    const char u = (*answer)[i];
    if (u < 'a' || u >= 'a' + p.nodes || seen[static_cast<std::size_t>(u - 'a')]) return 0.0f;
    seen[static_cast<std::size_t>(u - 'a')] = true;
    if (i > 0 && !p.has_edge((*answer)[i - 1], u)) return 0.0f;
  }
  return 1.0f;
}

}  // namespace grpo::planning
