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
        // Matvec rows carry the bandwidth of passes taken between their own calls;
        // matmul rows the run's. Either way the ratio is against the row's figure.
        let row_bandwidth = r["bandwidth_gbps"].as_f64().unwrap();
        if r["op"] == "matmul" {
            assert_eq!(row_bandwidth, bandwidth);
        }
        let ratio = r["gbps"].as_f64().unwrap() / row_bandwidth;
        assert!((r["ratio_to_bandwidth"].as_f64().unwrap() / ratio - 1.0).abs() < 1e-9);
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

/// `ferrite bench gpu` on a tiny shape and SmolLM2 with few tokens: the report names the
/// adapter, says when the numbers come from a software driver (lavapipe in CI), and has
/// a matvec row per asked type and path and a model row. No timing is asserted.
#[test]
fn bench_gpu_small_writes_json_and_markdown() {
    let out = std::env::temp_dir().join(format!("ferrite-bench-gpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // Fetched when missing, as every real-model test.
    let models = ferrite_tests::model_path(ferrite_tests::Model::SmolLm2);
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferrite"))
            .args([
                "bench", "gpu", "--models", "smollm2", "--pp", "8", "--tg", "2",
            ])
            .args(["--reps", "1", "--threads", "1"])
            .args(extra)
            .arg("--models-dir")
            .arg(models.parent().unwrap())
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run ferrite")
    };
    let bad = run(&["--shapes", "100x3"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad shape '100x3'"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let ok = run(&["--shapes", "256x512", "--types", "q8_0,q4_K"]);
    assert!(
        ok.status.success(),
        "ferrite bench gpu failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("gpu.json")).expect("gpu.json written"),
    )
    .expect("gpu.json is JSON");
    let a = &json["adapter"];
    for key in ["name", "backend", "device_type"] {
        assert!(!a[key].as_str().unwrap().is_empty(), "adapter.{key} in {a}");
    }
    let software = a["device_type"] == "Cpu";
    assert_eq!(a["software"], software);
    assert_eq!(json["note"].is_string(), software, "{json}");
    let mv = json["matvec"].as_array().unwrap();
    let rows: Vec<(&str, &str)> = mv
        .iter()
        .map(|m| (m["dtype"].as_str().unwrap(), m["path"].as_str().unwrap()))
        .collect();
    // Both types have an exact shader: each is measured on both paths.
    assert_eq!(
        rows,
        [
            ("q8_0", "fast"),
            ("q8_0", "exact"),
            ("q4_K", "fast"),
            ("q4_K", "exact")
        ]
    );
    for m in mv {
        assert_eq!(m["shape"], "256x512");
        assert!(m["gbps"].as_f64().unwrap() > 0.0, "{m}");
    }
    let e2e = json["e2e"].as_array().unwrap();
    assert_eq!(e2e.len(), 1);
    assert_eq!(e2e[0]["model"], "smollm2");
    assert_eq!(e2e[0]["layers"], 30);
    for k in ["pp", "tg"] {
        assert!(e2e[0][k]["tokens_per_second"].as_f64().unwrap() > 0.0);
    }
    let md = std::fs::read_to_string(out.join("gpu.md")).expect("gpu.md written");
    assert!(md.contains(a["name"].as_str().unwrap()));
    assert_eq!(md.contains("not performance claims"), software);
    assert!(md.contains("| 256x512 | q4_K | exact |") && md.contains("| smollm2 |"));
    std::fs::remove_dir_all(&out).ok();
}
