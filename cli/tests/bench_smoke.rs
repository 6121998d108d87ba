//! `ferrite bench kernels --quick` runs end to end and writes a report with every
//! required field. A behaviour test: no timing is asserted.

use std::process::Command;

#[test]
fn bench_kernels_quick_writes_json_and_markdown() {
    let out = std::env::temp_dir().join(format!("ferrite-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args([
            "bench",
            "kernels",
            "--quick",
            "--threads",
            "1",
            "--types",
            "q8_0",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run ferrite");
    assert!(status.success(), "ferrite bench kernels failed: {status}");

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("kernels.json")).expect("kernels.json written"),
    )
    .expect("kernels.json is JSON");
    let machine = &json["machine"];
    assert!(!machine["cpu"].as_str().expect("machine.cpu").is_empty());
    assert_eq!(machine["threads"].as_u64(), Some(1));
    let bandwidth = machine["bandwidth_gbps"]
        .as_f64()
        .expect("machine.bandwidth_gbps");
    assert!(bandwidth > 0.0 && bandwidth.is_finite());

    let results = json["results"].as_array().expect("results");
    let levels = kernels::cpu::supported_levels();
    let mut ops = Vec::new();
    for r in results {
        for key in ["op", "dtype", "isa", "shape"] {
            assert!(r[key].is_string(), "{key} missing in {r}");
        }
        for key in ["rows", "cols", "tokens", "threads"] {
            assert!(
                r[key].as_u64().is_some_and(|v| v > 0),
                "{key} missing in {r}"
            );
        }
        for key in [
            "seconds",
            "gbps",
            "gflops",
            "bandwidth_gbps",
            "ratio_to_bandwidth",
        ] {
            let v = r[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing in {r}"));
            assert!(v > 0.0 && v.is_finite(), "{key} = {v} in {r}");
        }
        assert_eq!(r["dtype"], "q8_0");
        assert_eq!(r["threads"], 1);
        assert_eq!(r["bandwidth_gbps"].as_f64(), Some(bandwidth));
        let isa = kernels::cpu::Isa::from_name(r["isa"].as_str().unwrap()).expect("known isa");
        assert!(levels.contains(&isa));
        let (rows, cols, tokens) = (
            r["rows"].as_f64().unwrap(),
            r["cols"].as_f64().unwrap(),
            r["tokens"].as_f64().unwrap(),
        );
        let seconds = r["seconds"].as_f64().unwrap();
        let gflops = 2.0 * rows * cols * tokens / seconds / 1e9;
        assert!((r["gflops"].as_f64().unwrap() / gflops - 1.0).abs() < 1e-9);
        match r["op"].as_str().unwrap() {
            "matvec" => assert_eq!(tokens, 1.0),
            "matmul" => assert!(tokens > 1.0),
            other => panic!("unknown op {other}"),
        }
        ops.push(r["op"].as_str().unwrap().to_string());
    }
    assert!(ops.iter().any(|o| o == "matvec"), "no matvec result");
    assert!(ops.iter().any(|o| o == "matmul"), "no matmul result");

    let md = std::fs::read_to_string(out.join("kernels.md")).expect("kernels.md written");
    assert!(md.contains("memory read bandwidth") && md.contains("| q8_0 |"));
    std::fs::remove_dir_all(&out).ok();
}
