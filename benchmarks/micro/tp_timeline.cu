/* tp_timeline.cu: where the time of one `transposed_mma` launch goes, wave by wave (NVIDIA).
 *
 * A standalone probe, not part of the extension: it includes the extension's kernel file
 * (torch-free) with GPTQ_TP_MARK defined, so the kernel records a %globaltimer stamp per
 * wave at each phase (events below), and calls the extension's own launcher with a chosen
 * plan (splits, kslices; 0 = the launcher's). Each case is timed as the suite does (a CUDA
 * graph of 24 launches over weight copies rotated past L2, median replay); it prints one line
 * per case and writes the stamps of the last launch of the last replay to TL_DUMP/caseNN.bin
 * (9 int64 of header: K, N, M, bits, splits, kslices, grid_x, ns per call, events; then waves x
 * events uint64 of %globaltimer, then the same of %clock64). tp_timeline_report.py turns them
 * into phases (start skew, first tile, each further tile, loop end, K-slice sum, split arrival
 * and tail, exit). Values are the weights' and activations' random bits: the probe times, it
 * does not check results (the GPU tests do, on the same kernel).
 *
 * Build and run (device machine, repository root):
 *   nvcc -O3 -std=c++17 -arch=sm_90 -I csrc/gpu benchmarks/micro/tp_timeline.cu \
 *     csrc/problem_check.c -o /tmp/tl && TL_DUMP=/tmp/raw /tmp/tl K,N,M,splits,kslices[,bits] ...
 */
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

static constexpr int kEvents = 20;    /* 0 entry, 1 loads issued, 2..11 ends of tiles 0..9, 13 loop end,
                                         14 slices summed, 15 partials written, 16 last block
                                         arrived, 17 exit (not last), 18 exit (last), 19 smid */
static constexpr int kMaxWaves = 1 << 16;
__device__ unsigned long long g_tl[kMaxWaves * kEvents];  /* %globaltimer, ns: across SMs */
__device__ unsigned long long g_tlc[kMaxWaves * kEvents]; /* %clock64, SM cycles: a wave's own deltas,
                                                             should the global timer be coarse */

/* The stamp is read after `dep` is available: the read is predicated on an integer compare of
 * dep's bits (which ptxas cannot fold, as it could a float compare with a NaN), so it waits for
 * dep. One NaN payload would stamp 0 (read as "not stamped"). */
__device__ __forceinline__ unsigned long long tl_stamp(float dep) {
  unsigned long long t;
  asm volatile(
      "{ .reg .pred p; .reg .b32 b; mov.b32 b, %1; setp.eq.b32 p, b, 0x7fc0dead; @p mov.u64 %0, 0;"
      " @!p mov.u64 %0, %%globaltimer; }"
      : "=l"(t)
      : "f"(dep));
  return t;
}
__device__ __forceinline__ void tl_mark(int ev, float dep) {
  const unsigned long long t = tl_stamp(dep);
  const unsigned long long c = clock64();
  if ((threadIdx.x & 31) != 0) return;
  const size_t w = ((size_t)blockIdx.y * gridDim.x + blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (w >= (size_t)kMaxWaves) return;
  g_tl[w * kEvents + ev] = t;
  g_tlc[w * kEvents + ev] = c;
  if (ev == 0) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    g_tl[w * kEvents + 19] = sm;
  }
}
#define GPTQ_TP_MARK(event, dep) tl_mark((event), (dep))

#include "../../csrc/gpu/gptq_transposed.cu"

#define CK(x)                                                                            \
  do {                                                                                   \
    cudaError_t e_ = (x);                                                                \
    if (e_ != cudaSuccess) {                                                             \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

__global__ void fill_bits(uint32_t* p, size_t words, uint32_t seed, uint32_t mask, uint32_t or_bits) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < words; i += (size_t)gridDim.x * blockDim.x) {
    uint32_t x = (uint32_t)i * 2654435761u ^ seed;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    p[i] = (x & mask) | or_bits;
  }
}
__global__ void timer_resolution(unsigned long long* out) {
  unsigned long long t0 = tl_stamp(0.0f), best = ~0ull;
  for (int i = 0; i < 4096; ++i) {
    const unsigned long long t = tl_stamp(0.0f);
    if (t != t0 && t - t0 < best) best = t - t0;
    t0 = t;
  }
  *out = best;
}

static void fill(void* p, size_t bytes, uint32_t seed, uint32_t mask = ~0u, uint32_t or_bits = 0) {
  fill_bits<<<512, 256>>>((uint32_t*)p, bytes / 4, seed, mask, or_bits);
  CK(cudaGetLastError());
}

static double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[(size_t)(q * (double)(v.size() - 1) + 0.5)];
}

int main(int argc, char** argv) {
  const char* dump_dir = getenv("TL_DUMP");
  if (!dump_dir) {
    fprintf(stderr, "set TL_DUMP to a directory for the raw stamps\n");
    return 2;
  }
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  unsigned long long* d_res;
  CK(cudaMalloc(&d_res, 8));
  timer_resolution<<<1, 1>>>(d_res);
  unsigned long long res = 0;
  CK(cudaMemcpy(&res, d_res, 8, cudaMemcpyDeviceToHost));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("device %s, %d SMs, L2 %d MiB, globaltimer step %llu ns\n", prop.name, sms, prop.l2CacheSize >> 20, res);
  cudaStream_t stream;
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (int ai = 1; ai < argc; ++ai) {
    long long K, N, M;
    int splits, kslices, bits = 4;
    if (sscanf(argv[ai], "%lld,%lld,%lld,%d,%d,%d", &K, &N, &M, &splits, &kslices, &bits) < 5 ||
        (bits != 2 && bits != 4 && bits != 8)) {
      fprintf(stderr, "case '%s': want K,N,M,splits,kslices[,bits]\n", argv[ai]);
      return 2;
    }
    const size_t wbytes = (size_t)K * N * bits / 8, groups = (size_t)K / 128;
    const size_t zbytes = groups * N * bits / 8, sbytes = groups * N * 2;
    const size_t per = wbytes + zbytes + sbytes;
    const int copies = (int)std::max<size_t>(2, (size_t)(2.5 * prop.l2CacheSize) / per + 1);
    std::vector<char*> wq(copies), zq(copies), sq(copies);
    for (int i = 0; i < copies; ++i) {
      CK(cudaMalloc(&wq[i], wbytes));
      CK(cudaMalloc(&zq[i], zbytes));
      CK(cudaMalloc(&sq[i], sbytes));
      fill(wq[i], wbytes, 11u + i);
      fill(zq[i], zbytes, 23u + i);
      fill(sq[i], sbytes, 37u + i, 0x03ff03ffu, 0x20002000u); /* fp16 in [2^-7, 2^-6) */
    }
    void *a, *c;
    CK(cudaMalloc(&a, (size_t)M * K * 2));
    CK(cudaMalloc(&c, (size_t)M * N * 2));
    fill(a, (size_t)M * K * 2, 5u, 0x03ff03ffu, 0x38003800u); /* fp16 in [0.5, 1) */
    gptq_problem p = {};
    p.a = a;
    p.c = c;
    p.m = M;
    p.n = N;
    p.k = K;
    p.lda = K;
    p.ldc = N;
    p.groups = (int64_t)groups;
    p.group_size = 128;
    p.bits = bits;
    p.zero_offset = 1;
    p.a_dtype = GPTQ_F16;
    p.scale_dtype = GPTQ_F16;
    gptq_gpu_tile tile = {};
    tile.splits = splits;
    tile.kslices = kslices;
    const gptq_gpu_tile* tp = (splits || kslices) ? &tile : nullptr;
    /* the weights of copy 0 before the plan: the workspace query checks the problem's pointers
     * (without them it answers 0 and every split plan was refused, session 22) */
    p.qweight = (const int32_t*)wq[0];
    p.qzeros = (const int32_t*)zq[0];
    p.scales = sq[0];
    void* ws = nullptr;
    auto release = [&]() {
      for (int i = 0; i < copies; ++i) {
        CK(cudaFree(wq[i]));
        CK(cudaFree(zq[i]));
        CK(cudaFree(sq[i]));
      }
      CK(cudaFree(a));
      CK(cudaFree(c));
      if (ws) CK(cudaFree(ws));
    };
    const char* refused_tile = gptq_gpu_tile_unsupported(GPTQ_GPU_KERNEL_TRANSPOSED_MMA, tp);
    if (refused_tile) { /* a tile this kernel file does not have (another tree's): no plan to ask for */
      printf("\ncase %s: %s, skipped\n", argv[ai], refused_tile);
      release();
      continue;
    }
    const tp_plan pl = tp_make_plan(&p, GPTQ_GPU_KERNEL_TRANSPOSED_MMA, tp, sms);
    const size_t ws_bytes = gptq_gpu_transposed_workspace_bytes(&p, GPTQ_GPU_KERNEL_TRANSPOSED_MMA, tp, sms);
    if (ws_bytes) CK(cudaMalloc(&ws, ws_bytes));
    void* tl_base = nullptr; /* stamps start at 0: a wave is in the launch when its entry is set */
    CK(cudaGetSymbolAddress(&tl_base, g_tl));
    CK(cudaMemset(tl_base, 0, sizeof(g_tl)));
    const int kLaunches = 24;
    cudaGraph_t graph;
    gptq_status refused = GPTQ_OK;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < kLaunches && refused == GPTQ_OK; ++i) {
      const int r = i % copies;
      p.qweight = (const int32_t*)wq[r];
      p.qzeros = (const int32_t*)zq[r];
      p.scales = sq[r];
      refused = gptq_gpu_transposed_gemm(&p, GPTQ_GPU_KERNEL_TRANSPOSED_MMA, tp, sms, ws, ws_bytes, stream);
    }
    CK(cudaStreamEndCapture(stream, &graph));
    if (refused != GPTQ_OK) { /* a plan this kernel file does not have (another tree's) */
      printf("\ncase %s: launcher status %d, skipped\n", argv[ai], (int)refused);
      CK(cudaGraphDestroy(graph));
      release();
      continue;
    }
    cudaGraphExec_t exec;
    CK(cudaGraphInstantiate(&exec, graph, 0));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<double> us;
    for (int rep = 0; rep < 25; ++rep) {
      CK(cudaEventRecord(e0, stream));
      CK(cudaGraphLaunch(exec, stream));
      CK(cudaEventRecord(e1, stream));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      if (rep >= 3) us.push_back(1000.0 * ms / kLaunches);
    }
    std::vector<unsigned long long> tl((size_t)kMaxWaves * kEvents), tlc(tl.size());
    CK(cudaMemcpyFromSymbol(tl.data(), g_tl, tl.size() * 8));
    CK(cudaMemcpyFromSymbol(tlc.data(), g_tlc, tlc.size() * 8));
    size_t waves = 0; /* waves index blocks x warps from 0 (tl_mark), whatever the block size */
    while (waves < (size_t)kMaxWaves && tl[waves * kEvents] != 0) ++waves;
    tl.resize(waves * kEvents);
    tlc.resize(waves * kEvents);
    printf("\ncase K=%lld N=%lld M=%lld W%d: %d splits x %d slices, %lld x %d blocks, %zu waves; %.2f us per call (median "
           "of 22 graph replays, %d launches over %d copies)\n",
           K, N, M, bits, pl.splits, pl.kslices, (long long)pl.grid_x, pl.splits, waves, pct(us, 0.5), kLaunches, copies);
    { /* the raw stamps, for tp_timeline_report.py */
      char path[512];
      snprintf(path, sizeof path, "%s/case%02d.bin", dump_dir, ai);
      if (FILE* f = fopen(path, "wb")) {
        const long long head[9] = {K, N, M, bits, pl.splits, pl.kslices, (long long)pl.grid_x,
                                   (long long)(1000.0 * pct(us, 0.5)), kEvents};
        fwrite(head, sizeof head, 1, f);
        fwrite(tl.data(), 8, tl.size(), f);
        fwrite(tlc.data(), 8, tlc.size(), f);
        fclose(f);
      } else {
        fprintf(stderr, "case %s: cannot write %s\n", argv[ai], path);
        return 1;
      }
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    release();
  }
  return 0;
}
