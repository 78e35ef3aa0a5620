"""End-to-end check of the benchmark harness in CPU mode on one tiny shape (in-process)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` lives at the root
pytest.importorskip("gptq_mi100._C", reason="compiled extension not built")

from benchmarks import bench_gemm, mi100_sheet  # noqa: E402
from benchmarks.shapes import gptq_weight_bytes, parse_shapes  # noqa: E402
from gptq_mi100.kernels import kernel_names  # noqa: E402


def test_bench_gemm_cpu_tiny(tmp_path):
    argv = ["--device", "cpu", "--quick", "--shapes", "256x512", "--m", "1", "4",
            "--out-dir", str(tmp_path), "--no-plot"]
    result = bench_gemm.main(argv)
    data = json.loads((tmp_path / "results.json").read_text())
    md = (tmp_path / "results.md").read_text()
    assert data["meta"]["command"] == "python -m benchmarks.bench_gemm " + " ".join(argv)
    assert data["meta"]["command"] in md and "## custom 256x512 256x512 (K x N)" in md
    assert data["meta"]["copy_bandwidth_gbps"] > 0
    rows = data["rows"]
    assert len(rows) == len(result["rows"])

    gptq = [r for r in rows if r["kernel_id"] in kernel_names("cpu")]
    # every gptq kernel, twice, for each (M, bits)
    assert len(gptq) == 2 * len(kernel_names("cpu")) * 2 * 2
    for r in gptq:
        assert r["status"] == "ok", r
        assert r["rel_err"] < 1e-2, r
        assert r["us_per_call"] > 0 and r["speedup_vs_fp16"] > 0
        assert r["weight_bytes"] == gptq_weight_bytes(256, 512, r["bits"], 128)
    assert {r["kernel"] for r in gptq} >= {"cpu_c", "cpu_c (repeat)"}
    fp16 = [r for r in rows if r["kernel_id"] == "fp16_linear"]
    assert len(fp16) == 2 and all(r["rel_err"] < 1e-2 for r in fp16)
    int4 = [r for r in rows if r["kernel_id"] == "int4pack"]
    assert len(int4) == 2 and all(r["bits"] == 4 for r in int4)
    for r in int4:  # either measured and right, or n/a with the reason
        assert (r["status"] == "ok" and r["rel_err"] < 2e-2) or (r["status"] == "n/a"
                                                                   and r["note"])


def test_bench_gemm_checkpoints_each_block(tmp_path):
    """A sweep cut short (device time limit) keeps the (shape, bits) blocks it finished."""
    args = bench_gemm.parse_args(["--device", "cpu", "--quick", "--shapes", "256x256",
                                  "256x512", "--m", "2", "--bits", "4", "8",
                                  "--kernels", "cpu_c", "--no-plot"])
    seen = []
    result = bench_gemm.run(args, [], checkpoint=lambda r: seen.append(r))
    assert [len({(r["k"], r["n"], r["bits"]) for r in p["rows"]}) for p in seen] == [1, 2, 3, 4]
    assert all(p["meta"]["partial"] for p in seen) and not result["meta"]["partial"]
    assert seen[-1]["rows"] == result["rows"]
    bench_gemm.write_markdown(seen[0], tmp_path / "partial.md")
    assert "**Partial:" in (tmp_path / "partial.md").read_text()
    bench_gemm.write_markdown(result, tmp_path / "full.md")
    assert "**Partial:" not in (tmp_path / "full.md").read_text()


def test_parse_shapes():
    s = parse_shapes(["qwen3-32b-tp4", "1024x4096,qwen3-32b-tp4"])
    assert [(x.k, x.n) for x in s] == [(5120, 2560), (2048, 5120), (5120, 12800),
                                      (6400, 5120), (1024, 4096)]
    with pytest.raises(ValueError):
        parse_shapes(["nope"])


def test_mi100_sheet(tmp_path):
    out = tmp_path / "sheet.md"
    text = mi100_sheet.main(["--out", str(out)])
    assert out.read_text().rstrip() == text.rstrip()
    # BACKGROUND.md section 4: W4 g128 floors of Qwen3-32B TP=4 at 1.2288 TB/s
    for row in ("| qwen3-32b-tp4 | qkv | 5120x2560 | 6.81 | 5.5 |",
                "| qwen3-32b-tp4 | o | 2048x5120 | 5.45 | 4.4 |",
                "| qwen3-32b-tp4 | gate_up | 5120x12800 | 34.05 | 27.7 |",
                "| qwen3-32b-tp4 | down | 6400x5120 | 17.02 | 13.9 |"):
        assert row in text
    assert "gfx908_resources.md" in text


def test_issue11_targets_table(tmp_path, capsys):
    """The issue-11 table judges auto and each kernel spec of a run: flat in M, faster than
    the baselines, large-M time and memory."""
    import json
    from benchmarks import issue11_targets

    def row(shape, bits, m, kern, us, extra=None):
        return {"shape": shape, "bits": bits, "m": m, "kernel_id": kern, "us_per_call": us,
                "repeat": 0, "status": "ok", "k": 5120, "n": 1280, "extra_mem_bytes": extra}
    rows = [row("o", 4, 1, "auto", 10.0), row("o", 4, 8, "auto", 11.0),
            row("o", 4, 64, "auto", 40.0), row("o", 4, 64, "transposed_mma:mt=64", 15.0),
            row("o", 4, 1, "transposed_mma:mt=64", 10.0),
            row("o", 16, 8, "fp16_linear", 12.0), row("o", 4, 8, "int4pack", 9.0),
            row("o", 4, 128, "auto", 30.0, extra=2**20), row("o", 16, 128, "fp16_linear", 29.0)]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"meta": {"copy_bandwidth_gbps": 4000.0, "launch_floor_us": 2.0},
                                "rows": rows}))
    issue11_targets.main([str(path)])
    out = capsys.readouterr().out
    assert "| W4 M=8 <= 1.15 x M=1 | auto | o | 11.00 us | 11.50 us | pass |" in out
    assert "| W4 M=64 <= 1.8 x M=1 | auto | o | 40.00 us | 18.00 us | miss by 2.22x |" in out
    assert "| W4 M=64 <= 1.8 x M=1 | transposed_mma:mt=64 | o | 15.00 us | 18.00 us | pass |" in out
    assert "| W4 faster than int4pack | auto | o M=8 | 11.00 us | 9.00 us | miss by 1.22x |" in out
    assert "| W4 M=128 <= 1.05 x fp16 | auto | o | 30.00 us | 30.45 us | pass |" in out
    assert "extra memory < 1% of fp16 W | auto | o | 1.00 MiB | 0.12 MiB | miss" in out


def test_issue10_targets_floor_table(tmp_path, capsys):
    """--floor judges torch's same-size copy against the same M = 1 bars, with the floor run's
    own B and L; shapes and bit widths the issue sets no bar for are left out."""
    import json
    from benchmarks import issue10_targets

    main_rows = [{"shape": "qkv", "bits": 4, "m": 1, "kernel_id": "auto", "us_per_call": 9.0,
                  "repeat": 0, "status": "ok", "weight_bytes": 7_000_000}]
    main = tmp_path / "main.json"
    main.write_text(json.dumps({"meta": {"copy_bandwidth_gbps": 3000.0, "launch_floor_us": 1.5},
                                "rows": main_rows}))
    floor = tmp_path / "floor.json"
    floor.write_text(json.dumps({"copy_gbps": 2000.0, "launch_floor_us": 1.0, "rows": [
        {"shape": "qwen3-32b-tp4 qkv 5120x2560", "bits": 4, "bytes": 7_000_000, "copy_us": 6.0},
        {"shape": "qwen3-32b-tp4 gate_up 5120x12800", "bits": 4, "bytes": 34_000_000, "copy_us": 21.0},
        {"shape": "qwen3-32b-tp4 qkv 5120x2560", "bits": 8, "bytes": 14_000_000, "copy_us": 9.0}]}))
    issue10_targets.main([str(main), "--floor", str(floor)])
    out = capsys.readouterr().out
    # main table: 7e6 / (0.7 x 3000e3) + 1.5 = 4.83
    assert "| W4 M=1 <= bytes/(0.7 B) + L | qkv | 9.00 | 4.83 | miss by 1.86x |" in out
    # floor: 7e6 / (0.7 x 2000e3) + 1.0 = 6.00; 34e6 / (0.85 x 2000e3) + 1.0 = 21.00
    assert "| W4 M=1 <= bytes/(0.7 B) + L | qkv | 6.00 | 6.00 | pass |" in out
    assert "| W4 M=1 <= bytes/(0.85 B) + L | gate_up | 21.00 | 21.00 | pass |" in out
    assert "| qkv | 9.00 |" not in out.split("Same-size floor")[1]  # W8 qkv has no bar
