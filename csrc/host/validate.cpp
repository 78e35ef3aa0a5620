// Argument validation shared by every backend.
#include "validate.h"

#include <ATen/MemoryOverlap.h>

#include <cstdint>

#include "errors.h"
#include "introspection.h"

namespace gptq_mi100 {

void check_bits(const char* op, int64_t bits) {
  GPTQ_CHECK_VALUE(bits == 2 || bits == 3 || bits == 4 || bits == 8, op,
                   ": bits must be one of 2, 3, 4, 8, got ", bits);
}

const ArgNames kGemmArgNames = {"a", "qweight", "qzeros", "scales", "a_perm", "group_index"};
const ArgNames kVllmArgNames = {"a", "b_q_weight", "b_gptq_qzeros", "b_gptq_scales", "b_g_idx",
                                "b_g_idx"};

int64_t checked_k(const char* op, const at::Tensor& qweight, int64_t bits, const char* name) {
  check_bits(op, bits);
  GPTQ_CHECK_TYPE(qweight.scalar_type() == at::kInt, op, ": ", name, " must be int32, got ",
                  qweight.scalar_type());
  GPTQ_CHECK_VALUE(qweight.dim() == 2, op, ": ", name, " must be 2-D [K*bits/32, N], got ",
                   qweight.dim(), " dims");
  GPTQ_CHECK_VALUE(qweight.is_contiguous(), op, ": ", name, " must be contiguous");
  const int64_t rows = qweight.size(0);
  // Before anything reduces over K (g_idx's min/max, a clamp into [0, K)).
  GPTQ_CHECK_VALUE(rows > 0, op, ": ", name, " has no rows (K = 0, shape ", qweight.sizes(),
                   "); K must be a positive multiple of 32");
  // 3-bit packs 32 values in 3 words; others pack 32/bits values per word.
  if (bits == 3) {
    GPTQ_CHECK_VALUE(rows % 3 == 0, op, ": for bits=3 ", name,
                     ".size(0) must be a multiple of 3, got ", rows);
    return rows / 3 * 32;
  }
  return rows * (32 / bits);
}

gptq_dtype to_gptq_dtype(at::ScalarType t) {
  return t == at::kHalf ? GPTQ_F16 : t == at::kBFloat16 ? GPTQ_BF16 : GPTQ_F32;
}

static void check_same_device(const char* op, const char* name, const at::Tensor& t,
                              const at::Tensor& a, const char* a_name) {
  GPTQ_CHECK_VALUE(t.device() == a.device(), op, ": ", name, " is on ", t.device(), " but ",
                   a_name, " is on ", a.device());
}

static const int32_t* index_pointer(const char* op, const char* name,
                                    const c10::optional<at::Tensor>& t, int64_t k,
                                    const at::Tensor& a, const char* a_name) {
  if (!t.has_value()) return nullptr;
  GPTQ_CHECK_TYPE(t->scalar_type() == at::kInt, op, ": ", name, " must be int32, got ",
                  t->scalar_type());
  GPTQ_CHECK_VALUE(t->dim() == 1 && t->size(0) == k, op, ": ", name,
                   " must be None or 1-D of length K=", k, ", got shape ", t->sizes());
  GPTQ_CHECK_VALUE(t->is_contiguous(), op, ": ", name, " must be contiguous");
  check_same_device(op, name, *t, a, a_name);
  return t->data_ptr<int32_t>();
}

gptq_problem make_problem(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                          const at::Tensor& qzeros, const at::Tensor& scales,
                          const c10::optional<at::Tensor>& a_perm,
                          const c10::optional<at::Tensor>& group_index, int64_t bits,
                          int64_t group_size, bool v2_zeros, const ArgNames& names) {
  const int64_t k = checked_k(op, qweight, bits, names.qweight);
  const int64_t n = qweight.size(1);
  GPTQ_CHECK_TYPE(a.scalar_type() == at::kHalf || a.scalar_type() == at::kBFloat16, op,
                  ": a must be float16 or bfloat16, got ", a.scalar_type());
  GPTQ_CHECK_VALUE(a.dim() == 2, op, ": a must be 2-D [M, K], got shape ", a.sizes());
  GPTQ_CHECK_VALUE(a.size(1) == k, op, ": a.size(1) must equal K=", k, " (from ",
                   names.qweight, ".size(0)=", qweight.size(0), " and bits=", bits, "), got ",
                   a.size(1));
  GPTQ_CHECK_VALUE(a.size(0) == 0 || a.stride(1) == 1, op,
                   ": a must have unit stride along K, got strides ", a.strides());
  // Rows that overlap in memory (stride 0 along M: an expanded tensor) are refused by
  // every kernel alike, here, rather than by a launcher's shape check.
  GPTQ_CHECK_VALUE(a.size(0) <= 1 || a.stride(0) >= k, op,
                   ": a's rows overlap in memory (strides ", a.strides(), " for shape ",
                   a.sizes(), "; an expanded tensor?): the row stride must be >= K=", k,
                   "; pass a.contiguous()");
  check_same_device(op, names.qweight, qweight, a, names.a);
  check_same_device(op, names.qzeros, qzeros, a, names.a);
  check_same_device(op, names.scales, scales, a, names.a);
  GPTQ_CHECK_VALUE(k % 32 == 0, op, ": K must be a multiple of 32, got ", k, " (from ",
                   names.qweight, ".size(0)=", qweight.size(0), " and bits=", bits, ")");
  const int64_t n_align = bits == 3 ? 32 : 32 / bits;
  GPTQ_CHECK_VALUE(n % n_align == 0 && n > 0, op, ": N (", names.qweight, ".size(1)) must be a ",
                   "positive multiple of ", n_align, " for bits=", bits, ", got ", n);
  // The GPU kernels load qweight as int32x4: a view at an odd offset is refused here, by
  // name, rather than by the launcher.
  GPTQ_CHECK_VALUE(!qweight.is_cuda() || reinterpret_cast<uintptr_t>(qweight.data_ptr()) % 16 == 0,
                   op, ": ", names.qweight, " must be 16-byte aligned on GPUs (storage offset ",
                   qweight.storage_offset(), " elements); pass ", names.qweight, ".clone()");

  GPTQ_CHECK_TYPE(scales.scalar_type() == at::kHalf || scales.scalar_type() == at::kBFloat16,
                  op, ": ", names.scales, " must be float16 or bfloat16, got ",
                  scales.scalar_type());
  GPTQ_CHECK_VALUE(scales.dim() == 2 && scales.size(1) == n && scales.size(0) >= 1, op, ": ",
                   names.scales, " must be [G, N=", n, "], got shape ", scales.sizes());
  GPTQ_CHECK_VALUE(scales.is_contiguous(), op, ": ", names.scales, " must be contiguous");
  const int64_t groups = scales.size(0);
  GPTQ_CHECK_TYPE(qzeros.scalar_type() == at::kInt, op, ": ", names.qzeros,
                  " must be int32, got ", qzeros.scalar_type());
  const int64_t zero_words = n * bits / 32;
  GPTQ_CHECK_VALUE(
      qzeros.dim() == 2 && qzeros.size(0) == groups && qzeros.size(1) == zero_words, op, ": ",
      names.qzeros, " must be [G=", groups, ", N*bits/32=", zero_words, "], got shape ",
      qzeros.sizes());
  GPTQ_CHECK_VALUE(qzeros.is_contiguous(), op, ": ", names.qzeros, " must be contiguous");

  gptq_problem p{};
  p.a_perm = index_pointer(op, names.a_perm, a_perm, k, a, names.a);
  p.group_index = index_pointer(op, names.group_index, group_index, k, a, names.a);
  if (!p.group_index) {
    if (group_size < 0) {  // vLLM: derive from G
      GPTQ_CHECK_VALUE(k % groups == 0, op, ": K=", k, " is not divisible by G=", groups,
                       " (", names.scales, ".size(0)) and no g_idx was given");
      group_size = k / groups;
    }
    // Division, not group_size * groups: a huge group_size must not wrap around to K.
    GPTQ_CHECK_VALUE(group_size > 0 && k % group_size == 0 && k / group_size == groups, op,
                     ": without group_index, G (", names.scales, ".size(0)=", groups,
                     ") must equal K / group_size = ", k, " / ", group_size);
  }
  p.a = a.data_ptr();
  p.qweight = qweight.data_ptr<int32_t>();
  p.qzeros = qzeros.data_ptr<int32_t>();
  p.scales = scales.data_ptr();
  p.m = a.size(0);
  p.n = n;
  p.k = k;
  p.lda = a.size(0) > 1 ? a.stride(0) : k;
  p.groups = groups;
  p.group_size = group_size > 0 ? group_size : k;
  p.bits = static_cast<int>(bits);
  p.zero_offset = v2_zeros ? 0 : 1;
  p.a_dtype = to_gptq_dtype(a.scalar_type());
  p.scale_dtype = to_gptq_dtype(scales.scalar_type());
  return p;
}

void check_out(const char* op, const at::Tensor& out, const at::Tensor& a, int64_t n) {
  GPTQ_CHECK_TYPE(out.scalar_type() == a.scalar_type(), op, ": out must have a's dtype ",
                  a.scalar_type(), ", got ", out.scalar_type());
  GPTQ_CHECK_VALUE(out.dim() == 2 && out.size(0) == a.size(0) && out.size(1) == n, op,
                   ": out must be [M=", a.size(0), ", N=", n, "], got shape ", out.sizes());
  GPTQ_CHECK_VALUE(out.numel() == 0 || out.stride(1) == 1, op,
                   ": out must have unit stride along N, got strides ", out.strides());
  GPTQ_CHECK_VALUE(out.size(0) <= 1 || out.stride(0) >= n, op,
                   ": out's rows overlap in memory (strides ", out.strides(),
                   "): the row stride must be >= N=", n);
  GPTQ_CHECK_VALUE(out.device() == a.device(), op, ": out is on ", out.device(),
                   " but a is on ", a.device());
  const at::MemOverlapStatus overlap = at::get_overlap_status(out, a);
  GPTQ_CHECK_VALUE(overlap != at::MemOverlapStatus::Full && overlap != at::MemOverlapStatus::Partial,
                   op, ": out shares memory with a; the kernels read a while writing out, so "
                   "out must be a separate tensor");
}

void check_one_device(const char* op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor* first = nullptr;
  for (const NamedTensor& t : tensors) {
    if (!t.tensor || !t.tensor->defined()) continue;
    if (!first) {
      first = &t;
      continue;
    }
    GPTQ_CHECK_VALUE(t.tensor->device() == first->tensor->device(), op, ": ", t.name,
                     " is on ", t.tensor->device(), " but ", first->name, " is on ",
                     first->tensor->device(), "; all tensor arguments must be on one device");
  }
}

void check_status(const char* op, gptq_status status, const gptq_problem* p) {
  if (status == GPTQ_OK) return;
  const char* why = "GPU launch failed";
  switch (status) {
    case GPTQ_ERR_BITS: why = "unsupported bit width"; break;
    case GPTQ_ERR_SHAPE: why = "shapes inconsistent with the packing"; break;
    case GPTQ_ERR_GROUP_SIZE: why = "group size inconsistent with K and G"; break;
    case GPTQ_ERR_DTYPE: why = "unsupported dtype"; break;
    case GPTQ_ERR_ALIGNMENT: why = "a tensor is not aligned for vector loads"; break;
    default: break;
  }
  std::string detail = why;
  if (status == GPTQ_ERR_NO_KERNEL)
    detail = msg("this extension was not built for the running GPU's architecture (",
                 build_info(), "); rebuild with TORCH_CUDA_ARCH_LIST / PYTORCH_ROCM_ARCH ",
                 "naming it");
  GPTQ_CHECK(false, op, ": kernel refused the problem (m=", p->m, ", n=", p->n, ", k=",
             p->k, ", groups=", p->groups, ", bits=", p->bits, "): ", detail);
}

void check_permutation(const char* op, const at::Tensor& perm, int64_t k) {
  GPTQ_CHECK_TYPE(perm.scalar_type() == at::kInt || perm.scalar_type() == at::kLong, op,
                  ": q_perm must be int32 (or int64), got ", perm.scalar_type());
  GPTQ_CHECK_VALUE(perm.dim() == 1 && perm.size(0) == k, op,
                   ": q_perm must be 1-D of length K=", k, ", got shape ", perm.sizes());
  // Load time: reading back to the host is allowed here.
  auto sorted = std::get<0>(perm.to(at::kCPU, at::kLong).sort());
  bool ok = at::equal(sorted, at::arange(k, sorted.options()));
  GPTQ_CHECK_VALUE(ok, op, ": q_perm must be a permutation of 0..K-1 (K=", k, ")");
}

void check_g_idx(const char* op, const at::Tensor& g_idx, int64_t k, int64_t groups) {
  GPTQ_CHECK_TYPE(g_idx.scalar_type() == at::kInt || g_idx.scalar_type() == at::kLong, op,
                  ": g_idx must be int32 (or int64), got ", g_idx.scalar_type());
  GPTQ_CHECK_VALUE(g_idx.dim() == 1 && g_idx.size(0) == k, op,
                   ": g_idx must be 1-D of length K=", k, ", got shape ", g_idx.sizes());
  auto host = g_idx.to(at::kCPU, at::kLong);
  const int64_t lo = host.min().item<int64_t>(), hi = host.max().item<int64_t>();
  GPTQ_CHECK_VALUE(lo >= 0 && hi < groups, op, ": g_idx values must lie in [0, G=", groups,
                   "), got min ", lo, " max ", hi);
}

}  // namespace gptq_mi100
