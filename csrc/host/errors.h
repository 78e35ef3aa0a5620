// Error messages for the torch-facing host code.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>
#include <type_traits>

namespace gptq_mi100 {

// Built without std::ostream: in the CUDA build on the H100 machine (g++ 13, torch 2.11)
// streaming an integer inside this module crashed in libstdc++'s locale code (a num_put
// facet mismatch), so numbers go through std::to_string.
namespace detail {
inline void append(std::string& s, const char* v) { s += v; }
inline void append(std::string& s, const std::string& v) { s += v; }
inline void append(std::string& s, c10::string_view v) { s.append(v.data(), v.size()); }
template <typename T, std::enable_if_t<std::is_integral<T>::value, int> = 0>
inline void append(std::string& s, T v) { s += std::to_string(v); }
inline void append(std::string& s, at::IntArrayRef v) {
  s += "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  s += "]";
}
inline void append(std::string& s, at::ScalarType t) { s += c10::toString(t); }
inline void append(std::string& s, const at::Device& d) { s += d.str(); }
}  // namespace detail

template <typename... Args>
std::string msg(const Args&... args) {
  std::string s;
  (detail::append(s, args), ...);
  return s;
}

}  // namespace gptq_mi100

#define GPTQ_CHECK(cond, ...) TORCH_CHECK(cond, ::gptq_mi100::msg(__VA_ARGS__))
#define GPTQ_CHECK_VALUE(cond, ...) TORCH_CHECK_VALUE(cond, ::gptq_mi100::msg(__VA_ARGS__))
#define GPTQ_CHECK_TYPE(cond, ...) TORCH_CHECK_TYPE(cond, ::gptq_mi100::msg(__VA_ARGS__))
