"""tools/ncu_stalls.py sums ncu's per-instruction stall samples right (synthetic CSV)."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("ncu_stalls", os.path.join(ROOT, "tools", "ncu_stalls.py"))
ncu_stalls = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ncu_stalls)

HEADER = ['"Address"', '"Source"', '"Warp Stall Sampling (All Samples)"', '"Instructions Executed"',
          '"stall_long_sb"', '"stall_wait"', '"stall_long_sb (Not Issued)"']


def write_csv(path, rows):
    lines = ['"Kernel Name","void k<4>(args)",', ",".join(HEADER)]
    lines += [",".join(f'"{v}"' for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def test_totals_by_reason_and_instruction_order(tmp_path):
    f = tmp_path / "k.csv"
    write_csv(f, [["0x10", "LDG.E.128 R4, [R2]", "3", "800", "1", "2", "9"],
                  ["0x20", "IMAD.U32 R2, R2, 0x10000, RZ", "1,210", "9600", "1,200", "10", "7"],
                  ["0x30", "HMMA.16816.F32 R8, R4, R6, R8", "0", "9600", "", "", ""]])
    out = ncu_stalls.summarize(*ncu_stalls.read(str(f)), top=5)
    lines = out.splitlines()
    assert lines[0] == "# void k<4>(args): warp stall samples by reason (total 1213)"
    assert lines[1].split()[:2] == ["stall_long_sb", "1201"]  # the Not-Issued column is not summed
    assert lines[2].split()[:2] == ["stall_wait", "12"]
    listed = [l for l in lines if l[:5].strip().isdigit()]
    assert [l.split()[1] for l in listed] == ["1210", "3"]  # most samples first, unsampled left out
    assert "IMAD.U32" in listed[0] and listed[0].endswith("long_sb=1,200 wait=10")


def test_refuses_other_files(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not ncu's source page"):
        ncu_stalls.read(str(f))
    assert ncu_stalls.main([str(f)]) == 2
