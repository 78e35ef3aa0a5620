// Runs one layout-2 GEMM launch (csrc/gpu/gptq_transposed.cu, compiled for the CPU emulator)
// on a problem written by tests/test_gpu_emulation.py:
//   run_kernel DIR        DIR/params.txt: m n k lda group_size bits zero_offset act_bf16
//                         scale_bf16 has_perm kernel row_tile splits load_bytes kslices sw
//                         DIR/{a,qweight,qzeros,scales[,a_perm]}.bin; writes DIR/c.bin
//                         kernel -1: gptq_gpu_transposed_dequantize instead, c = W [K, N]
// Exit status: 0, or 1 with the launcher's status on stderr.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "compat.h"
#include "gptq_gpu.h"

GPTQ_EMU_DEFINE_GLOBALS

template <typename T>
static std::vector<T> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) {
    fprintf(stderr, "run_kernel: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<T> v((size_t)f.tellg() / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)(v.size() * sizeof(T)));
  return v;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: run_kernel DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::ifstream pf(dir + "/params.txt");
  long long m, n, k, lda, group_size;
  int bits, zero_offset, act_bf16, scale_bf16, has_perm, kernel;
  gptq_gpu_tile tile{};
  pf >> m >> n >> k >> lda >> group_size >> bits >> zero_offset >> act_bf16 >> scale_bf16 >>
      has_perm >> kernel >> tile.row_tile >> tile.splits >> tile.load_bytes >> tile.kslices >> tile.sw;
  if (!pf) {
    fprintf(stderr, "run_kernel: bad params.txt\n");
    return 2;
  }
  auto a = read_all<uint16_t>(dir + "/a.bin");
  auto qweight = read_all<int32_t>(dir + "/qweight.bin");
  auto qzeros = read_all<int32_t>(dir + "/qzeros.bin");
  auto scales = read_all<uint16_t>(dir + "/scales.bin");
  std::vector<int32_t> perm;
  if (has_perm) perm = read_all<int32_t>(dir + "/a_perm.bin");
  const bool dequantize = kernel == -1;
  std::vector<uint16_t> c((size_t)((dequantize ? k : m) * n), 0x7e00u); /* poisoned: fp16 NaN */
  int errors = 0;

  gptq_problem p{};
  p.a = a.data();
  p.qweight = qweight.data();
  p.qzeros = qzeros.data();
  p.scales = scales.data();
  p.a_perm = has_perm ? perm.data() : nullptr;
  p.c = c.data();
  p.index_errors = &errors;
  p.m = m;
  p.n = n;
  p.k = k;
  p.lda = lda;
  p.ldc = n;
  p.groups = k / group_size;
  p.group_size = group_size;
  p.bits = bits;
  p.zero_offset = zero_offset;
  p.a_dtype = act_bf16 ? GPTQ_BF16 : GPTQ_F16;
  p.scale_dtype = scale_bf16 ? GPTQ_BF16 : GPTQ_F16;
  gptq_status st;
  if (dequantize) {
    st = gptq_gpu_transposed_dequantize(&p, nullptr);
  } else {
    const gptq_gpu_kernel kern = (gptq_gpu_kernel)kernel;
    const int sm_count = 4;
    std::vector<char> ws(gptq_gpu_transposed_workspace_bytes(&p, kern, &tile, sm_count) + 16);
    st = gptq_gpu_transposed_gemm(&p, kern, &tile, sm_count, ws.data(), ws.size(), nullptr);
  }
  if (st != GPTQ_OK) {
    fprintf(stderr, "run_kernel: status %d\n", (int)st);
    return 1;
  }
  std::ofstream(dir + "/c.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(c.data()), (std::streamsize)(c.size() * 2));
  printf("ok index_errors=%d\n", errors);
  return 0;
}
