"""Benchmarks run and record what they measured (speed goals live in their JSON, not in tests)."""

import json

from prunerob import bench


def test_prune_bench_times_every_method_and_records_the_machine(tmp_path):
    records = bench.bench_prune("cnn", (1, 28, 28), crs=(1, 2, 4))
    assert len(records) == 12 * 2
    assert {(r["structure"], r["scope"], r["criterion"]) for r in records} == {
        (s, sc, c) for s in ("unstructured", "kernel", "filter") for sc in ("global", "local")
        for c in ("magnitude", "random")}
    assert all(r["compute_s"] > 0 and r["apply_s"] >= 0 for r in records)
    unstructured = [r for r in records if r["structure"] == "unstructured"]
    assert all(abs(r["kept"] - 1 / r["cr"]) <= 1 / r["n_prunable"] for r in unstructured)
    path = bench.write("prune_cnn", records, "test", tmp_path / "b.json")
    blob = json.loads(path.read_text())
    assert blob["machine"]["cpu_count"] >= 1 and blob["records"] == records
    assert "cr" in bench.summarize_prune(records) or "2" in bench.summarize_prune(records)
