"""Instructions per inner-loop step of the gfx908 GEMM kernels, from hipcc's ISA listing.

For every kernel whose mangled name contains one of the given fragments, counts the VALU,
SALU and LDS instructions in the basic blocks that hold the loop's math (v_dot2* or
v_mfma*): a static, per-step view of what the wave issues (benchmarks/NOTES.md entry 15).

    HIP_PLATFORM=amd hipcc $(grep -v '^#' tools/hip_flags.txt | sed 's/#.*//') \\
        --offload-arch=gfx908 --cuda-device-only -S -I csrc -I csrc/gpu \\
        -o /tmp/tp.gfx908.s csrc/gpu/gptq_transposed.cu
    python3 tools/isa_loop_count.py /tmp/tp.gfx908.s ILi4ELi0ELi1ELi0E ILi4ELi0ELi8ELi0E
"""
import re
import sys

MATH = re.compile(r"^v_(dot2|mfma)")


def kernels(path):
    name, body = None, []
    for line in open(path):
        m = re.match(r"^(_Z\w+):", line)
        if m:
            if name:
                yield name, body
            name, body = m.group(1), []
        elif name:
            body.append(line)
    if name:
        yield name, body


def blocks(body):
    block = []
    for line in body:
        if re.match(r"^(\.LBB|; %bb)", line) and block:
            yield block
            block = []
        block.append(line)
    if block:
        yield block


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    for name, body in kernels(argv[0]):
        if not any(f in name for f in argv[1:]):
            continue
        count = {"math": 0, "valu": 0, "salu": 0, "lds": 0}
        for block in blocks(body):
            ins = [l.split()[0] for l in block if l.startswith("\t") and not l.strip().startswith((";", "."))]
            math = sum(1 for i in ins if MATH.match(i))
            if not math:
                continue
            count["math"] += math
            count["valu"] += sum(1 for i in ins if i.startswith("v_"))
            count["salu"] += sum(1 for i in ins if i.startswith("s_"))
            count["lds"] += sum(1 for i in ins if i.startswith("ds_"))
        print(f"{name[:64]:64s} " + " ".join(f"{k}={v}" for k, v in count.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
