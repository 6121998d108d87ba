//! `/api/pull` and `/api/push` through ferrite's real server and registry client against
//! an in-process registry (fixture.rs): round trips with the real SmolLM2 model, resume,
//! verification, auth, and hostile or missing registry content.

#[path = "../common/mod.rs"]
mod common;
mod fixture;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrite_server::http::bind;
use ferrite_server::registry::{RegistryClient, RegistryOptions};
use ferrite_server::renderer::TemplateRenderer;
use ferrite_server::store::Store;
use ferrite_server::store_catalog::StoreCatalog;
use fixture::{hex, Fixture, MANIFEST_TYPE};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/registry/testdata/id_ed25519"
);
const PUBKEY: &str = include_str!("../../src/registry/testdata/id_ed25519.pub");

fn opts() -> RegistryOptions {
    RegistryOptions {
        key_path: Some(KEY.into()),
        retry_base: Duration::from_millis(5),
        ..RegistryOptions::default()
    }
}

/// ferrite's real server (store catalog + template renderer) on `models`.
fn server(models: &Path, registry: RegistryOptions) -> TestServer {
    let store = Arc::new(Store::open(models).unwrap());
    let catalog = Arc::new(StoreCatalog::new(store).with_registry(RegistryClient::new(registry)));
    let cfg = config(&[]);
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let b = bind(
                cfg,
                catalog,
                Arc::new(TemplateRenderer::new()),
                "127.0.0.1:0".parse().unwrap(),
            )
            .await
            .unwrap();
            tx.send((b.local_addr(), b.state().clone())).unwrap();
            b.run_until(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    let (addr, state) = rx.recv().unwrap();
    TestServer::with_thread(addr, state, stop_tx, thread)
}

fn statuses(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l["status"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("error: {}", l["error"].as_str().unwrap_or("?")))
        })
        .collect()
}

/// Distinct statuses in order (progress lines repeat).
fn phases(lines: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in statuses(lines) {
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

/// Files under `dir`, recursively, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Creates `name` from the real SmolLM2 GGUF through the API.
fn create_smol(addr: std::net::SocketAddr, name: &str) {
    let bytes = fs::read(smollm2()).unwrap();
    let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
    let r = raw(
        addr,
        "POST",
        &format!("/api/blobs/{digest}"),
        &[],
        Some(&bytes),
    );
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let r = post(
        addr,
        "/api/create",
        &json!({"model": name, "files": {"smol.gguf": digest}, "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A synthetic model on the fixture: a `size`-byte random "model" blob and a config.
fn seed_synthetic(fx: &Fixture, repo: &str, tag: &str, size: usize) -> (String, String) {
    let mut data = vec![0u8; size];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let model = fx.reg.seed_blob(repo, data);
    let config =
        br#"{"model_format":"gguf","model_family":"llama","architecture":"amd64","os":"linux"}"#;
    let config_digest = fx.reg.seed_blob(repo, config.to_vec());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": model, "size": size}],
    });
    fx.reg
        .seed_manifest(repo, tag, serde_json::to_vec(&manifest).unwrap());
    (model, config_digest)
}

#[test]
fn push_to_a_registry_then_pull_into_an_empty_store_and_generate() {
    let fx = Fixture::start();
    let dir_a = tempfile::tempdir().unwrap();
    let a = server(dir_a.path(), opts());
    let name = format!("{}/library/smol:latest", fx.host());
    create_smol(a.addr, &name);

    let lines = post(
        a.addr,
        "/api/push",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    let p = phases(&lines);
    assert_eq!(p.first().unwrap(), "retrieving manifest");
    assert_eq!(&p[p.len() - 2..], ["pushing manifest", "success"], "{p:?}");
    let pushing: Vec<&Value> = lines
        .iter()
        .filter(|l| l["status"].as_str().unwrap().starts_with("pushing "))
        .filter(|l| l["status"] != "pushing manifest")
        .collect();
    let model_line = pushing
        .iter()
        .rev()
        .find(|l| l["total"].as_u64() == Some(fs::metadata(smollm2()).unwrap().len()))
        .expect("the model layer is reported");
    let d = model_line["digest"].as_str().unwrap();
    assert_eq!(model_line["status"], format!("pushing {}", &d[7..19]));
    assert_eq!(model_line["completed"], model_line["total"]);

    // The registry holds the manifest as Go's json.Marshal writes it (the local file
    // minus its trailing newline) and every blob.
    let pushed = fx
        .reg
        .manifest("library/smol", "latest")
        .expect("manifest pushed");
    let local = fs::read(
        dir_a
            .path()
            .join(format!("manifests/{}/library/smol/latest", fx.host())),
    )
    .unwrap();
    assert_eq!(pushed, local[..local.len() - 1]);
    let log = fx.reg.log();
    assert!(log
        .iter()
        .any(|l| l.starts_with("POST /v2/library/smol/blobs/uploads/")));
    assert!(log
        .iter()
        .any(|l| l.starts_with("PATCH /v2/library/smol/blobs/uploads/u")));
    assert!(log
        .iter()
        .any(|l| l.starts_with("PUT /v2/library/smol/blobs/uploads/u")
            && l.contains("digest=sha256%3A")));

    // Pushing again only asks (HEAD) for each blob.
    fx.reg.clear_log();
    let lines = post(
        a.addr,
        "/api/push",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success");
    let log = fx.reg.log();
    assert!(
        log.iter()
            .all(|l| l.starts_with("HEAD ") || l.starts_with("PUT /v2/library/smol/manifests/")),
        "{log:?}"
    );

    // Pull into an empty store, then generate with the pulled model.
    let dir_b = tempfile::tempdir().unwrap();
    let b = server(dir_b.path(), opts());
    let lines = post(
        b.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    let p = phases(&lines);
    assert_eq!(p[0], "pulling manifest");
    assert_eq!(
        &p[p.len() - 3..],
        ["verifying sha256 digest", "writing manifest", "success"],
        "{p:?}"
    );
    for l in lines
        .iter()
        .filter(|l| l["status"].as_str().unwrap().starts_with("pulling "))
    {
        if l["status"] != "pulling manifest" {
            let d = l["digest"].as_str().unwrap();
            assert_eq!(l["status"], format!("pulling {}", &d[7..19]));
            assert!(l["completed"].as_u64().unwrap_or(0) <= l["total"].as_u64().unwrap());
        }
    }
    // Stored byte for byte; blobs identical to the source store.
    let pulled = fs::read(
        dir_b
            .path()
            .join(format!("manifests/{}/library/smol/latest", fx.host())),
    )
    .unwrap();
    assert_eq!(pulled, pushed);
    let blobs = |d: &Path| files(&d.join("blobs"));
    assert_eq!(blobs(dir_b.path()), blobs(dir_a.path()));
    let tags = get(b.addr, "/api/tags").json();
    assert_eq!(tags["models"][0]["name"], name);
    assert_eq!(tags["models"][0]["digest"], hex(&Sha256::digest(&pulled)));

    let r = post(
        b.addr,
        "/api/generate",
        &json!({"model": name, "prompt": "What is 2+2?", "stream": false,
                "options": {"seed": 1, "temperature": 0, "num_predict": 8}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert!(j["eval_count"].as_u64().unwrap() > 0);
    assert!(!j["response"].as_str().unwrap().is_empty());

    // Pulling again: every blob is already there.
    fx.reg.clear_log();
    let lines = post(
        b.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success");
    assert!(
        fx.reg.log().iter().all(|l| l.contains("/manifests/")),
        "{:?}",
        fx.reg.log()
    );
}

#[test]
fn inherited_layers_are_mounted_and_uploads_follow_storage_redirects() {
    let fx = Fixture::start();
    fx.faults(|f| f.redirect_uploads = true);
    let dir = tempfile::tempdir().unwrap();
    let a = server(dir.path(), opts());
    let base = format!("{}/library/smol:latest", fx.host());
    create_smol(a.addr, &base);
    let lines = post(
        a.addr,
        "/api/push",
        &json!({"model": base, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
    assert!(fx.reg.log().iter().any(|l| l.starts_with("PUT /storage/u")));
    assert!(fx.reg.storage_auth.lock().unwrap().is_empty());

    // A model created FROM it carries `from` on the inherited layer: pushed as a mount.
    let derived = format!("{}/me/derived:v1", fx.host());
    let r = post(
        a.addr,
        "/api/create",
        &json!({"model": derived, "from": base, "system": "Be brief.", "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    fx.reg.clear_log();
    let lines = post(
        a.addr,
        "/api/push",
        &json!({"model": derived, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
    let log = fx.reg.log();
    assert!(
        log.iter().any(|l| l
            .starts_with("POST /v2/me/derived/blobs/uploads/?from=library%2Fsmol&mount=sha256%3A")),
        "{log:?}"
    );
    assert!(fx.reg.manifest("me/derived", "v1").is_some());
}

#[test]
fn a_corrupt_blob_is_rejected_and_leaves_nothing_in_the_store() {
    let fx = Fixture::start();
    let (model, _) = seed_synthetic(&fx, "library/bad", "latest", 300_000);
    fx.faults(|f| {
        f.corrupt.insert(model.clone());
    });
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    let name = format!("{}/library/bad", fx.host());
    let r = post(
        s.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    );
    assert_eq!(r.status, 200);
    let lines = r.lines();
    let err = lines.last().unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        err.starts_with(&format!(
            "digest mismatch, file must be downloaded again: want {model}, got sha256:"
        )),
        "{err}"
    );
    // The config blob was fine and is kept; nothing of the bad blob, no manifest.
    assert_eq!(files(&dir.path().join("manifests")), Vec::<String>::new());
    let blobs = files(&dir.path().join("blobs"));
    assert!(blobs.iter().all(|f| !f.contains(&model[7..])), "{blobs:?}");
}

#[test]
fn an_interrupted_download_resumes_from_its_part_files() {
    let fx = Fixture::start();
    let size = 3_000_000;
    let (model, _) = seed_synthetic(&fx, "library/big", "latest", size);
    let small_parts = RegistryOptions {
        min_part: 1_000_000,
        max_part: 1_000_000,
        max_parallel: 2,
        ..opts()
    };
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/library/big", fx.host());

    // A registry that answers 503 at first: the blob URL is asked again.
    fx.faults(|f| f.fail_gets = 2);
    {
        let d = tempfile::tempdir().unwrap();
        let s = server(d.path(), small_parts.clone());
        let lines = post(
            s.addr,
            "/api/pull",
            &json!({"model": name, "insecure": true}),
        )
        .lines();
        assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
        let probes = fx
            .reg
            .log()
            .iter()
            .filter(|l| l.ends_with("bytes=0-0"))
            .count();
        assert!(probes >= 3, "{:?}", fx.reg.log());
        fx.reg.clear_log();
    }

    // Within one pull: dropped connections are retried from where they stopped.
    fx.faults(|f| {
        f.cut_after = Some(400_000);
        f.cuts_left = 3;
    });
    {
        let s = server(dir.path(), small_parts.clone());
        let lines = post(
            s.addr,
            "/api/pull",
            &json!({"model": name, "insecure": true}),
        )
        .lines();
        assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
        let log = fx.reg.log();
        assert!(
            log.iter().any(|l| l.ends_with("bytes=400000-999999")),
            "a retried part asks for the rest only: {log:?}"
        );
    }

    // Across pulls: the first gives up (one try per part), the second resumes.
    let dir2 = tempfile::tempdir().unwrap();
    let one_try = RegistryOptions {
        max_retries: 1,
        ..small_parts.clone()
    };
    fx.faults(|f| {
        f.cut_after = Some(250_000);
        f.cuts_left = 3;
        f.then_fail = true;
    });
    fx.reg.clear_log();
    {
        let s = server(dir2.path(), one_try);
        let lines = post(
            s.addr,
            "/api/pull",
            &json!({"model": name, "insecure": true}),
        )
        .lines();
        let last = lines.last().unwrap();
        assert_eq!(last["error"], "503: try later", "{lines:?}");
    }
    fx.faults(|f| *f = Default::default());
    let blobs = files(&dir2.path().join("blobs"));
    let partial = format!("sha256-{}-partial", &model[7..]);
    assert!(blobs.contains(&partial), "{blobs:?}");
    let desc: Vec<Value> = (0..3)
        .map(|n| {
            serde_json::from_slice(
                &fs::read(dir2.path().join("blobs").join(format!("{partial}-{n}"))).unwrap(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(desc[1]["Offset"], 1_000_000);
    assert_eq!(desc[1]["Size"], 1_000_000);
    let kept: u64 = desc.iter().map(|d| d["Completed"].as_u64().unwrap()).sum();
    assert!(kept >= 250_000, "{desc:?}");

    fx.reg.clear_log();
    let s = server(dir2.path(), small_parts);
    let lines = post(
        s.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
    let served = fx
        .reg
        .served
        .lock()
        .unwrap()
        .get(&model)
        .copied()
        .unwrap_or(0);
    assert!(
        served + kept <= size as u64 + 1,
        "resumed: served {served} after keeping {kept}"
    );
    let blobs = files(&dir2.path().join("blobs"));
    assert!(blobs.contains(&format!("sha256-{}", &model[7..])));
    assert!(blobs.iter().all(|f| !f.contains("partial")), "{blobs:?}");
    let bytes = fs::read(
        dir2.path()
            .join("blobs")
            .join(format!("sha256-{}", &model[7..])),
    )
    .unwrap();
    assert_eq!(format!("sha256:{}", hex(&Sha256::digest(&bytes))), model);
}

#[test]
fn invalid_names_and_unknown_models() {
    let fx = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    for path in ["/api/pull", "/api/push"] {
        for bad in ["a//b", "x:", "../../etc/passwd", "a/b/c/d/e"] {
            let r = post(s.addr, path, &json!({"model": bad}));
            assert_eq!(r.status, 400, "{path} {bad}: {}", r.text());
            assert_eq!(r.json(), json!({"error": "invalid model name"}));
        }
    }
    let r = post(s.addr, "/api/push", &json!({}));
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"error": "model is required"}))
    );

    // Unknown on the registry.
    let name = format!("{}/library/nope:1", fx.host());
    let r = post(
        s.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    );
    assert_eq!(r.status, 200);
    let lines = r.lines();
    assert_eq!(
        statuses(&lines),
        [
            "pulling manifest",
            "error: pull model manifest: file does not exist"
        ]
    );
    let r = post(
        s.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true, "stream": false}),
    );
    assert_eq!(
        (r.status, r.json()),
        (
            500,
            json!({"error": "pull model manifest: file does not exist"})
        )
    );

    // http without insecure.
    let r = post(
        s.addr,
        "/api/pull",
        &json!({"model": format!("http://{name}")}),
    );
    assert_eq!(
        (r.status, r.json()),
        (500, json!({"error": "insecure protocol http"}))
    );

    // Pushing a model that is not here.
    let r = post(
        s.addr,
        "/api/push",
        &json!({"model": name, "insecure": true}),
    );
    let lines = r.lines();
    assert_eq!(
        statuses(&lines)[..2],
        ["retrieving manifest", "couldn't retrieve manifest"]
    );
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .ends_with("no such file or directory"));
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn hostile_registry_responses_are_errors_and_touch_nothing() {
    let fx = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    let pull = |repo: &str| {
        let name = format!("{}/{repo}", fx.host());
        post(
            s.addr,
            "/api/pull",
            &json!({"model": name, "insecure": true}),
        )
        .lines()
    };
    let last_error = |lines: &[Value]| {
        lines.last().unwrap()["error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // A digest that would be a path outside the store (CVE-2024-37032).
    fx.reg.seed_manifest(
        "library/evil",
        "latest",
        br#"{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256-../../../../tmp/x","size":3}]}"#.to_vec(),
    );
    assert_eq!(last_error(&pull("library/evil")), "invalid digest format");

    // Not JSON, and far too big.
    fx.reg
        .seed_manifest("library/junk", "latest", b"<html>".to_vec());
    assert!(last_error(&pull("library/junk")).starts_with("manifest is not valid JSON"));
    fx.reg
        .seed_manifest("library/huge", "latest", vec![b' '; 5 << 20]);
    assert!(last_error(&pull("library/huge")).contains("larger than"));

    // An image index (no layers) is not a model.
    fx.reg.seed_manifest(
        "library/index",
        "latest",
        br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:00","size":1}]}"#.to_vec(),
    );
    assert_eq!(last_error(&pull("library/index")), "manifest has no layers");

    // The registry's blob is bigger than the manifest says.
    let (model, _) = seed_synthetic(&fx, "library/liar", "latest", 1000);
    let mut m: Value =
        serde_json::from_slice(&fx.reg.manifest("library/liar", "latest").unwrap()).unwrap();
    m["layers"][0]["size"] = json!(10);
    fx.reg
        .seed_manifest("library/liar", "latest", serde_json::to_vec(&m).unwrap());
    let e = last_error(&pull("library/liar"));
    assert_eq!(
        e,
        format!("blob {model} is 1000 bytes on the registry, the manifest says 10")
    );

    assert_eq!(files(&dir.path().join("manifests")), Vec::<String>::new());
    assert!(files(&dir.path().join("blobs"))
        .iter()
        .all(|f| !f.contains(&model[7..])));
}

#[test]
fn auth_challenges_are_answered_with_signed_token_requests() {
    let fx = Fixture::start();
    fx.faults(|f| f.auth = true);
    *fx.reg.trusted_key.lock().unwrap() = Some(PUBKEY.split(' ').nth(1).unwrap().to_string());
    seed_synthetic(&fx, "library/private", "latest", 5000);
    let name = format!("{}/library/private", fx.host());

    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    let lines = post(
        s.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
    let log = fx.reg.log();
    let tokens: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET /token?"))
        .collect();
    assert_eq!(tokens.len(), 1, "the token is reused: {log:?}");
    assert!(tokens[0]
        .contains("scope=repository%3Alibrary%2Fprivate%3Apull%2Cpush&service=fixture&ts="));

    // Push back under another name with the same key.
    let other = format!("{}/library/copy", fx.host());
    assert_eq!(
        post(
            s.addr,
            "/api/copy",
            &json!({"source": name, "destination": other})
        )
        .status,
        200
    );
    let lines = post(
        s.addr,
        "/api/push",
        &json!({"model": other, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");

    // An unknown key is refused by the token endpoint; no key at all fails to sign.
    *fx.reg.trusted_key.lock().unwrap() = Some("AAAA".into());
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = server(dir2.path(), opts());
    let lines = post(
        s2.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(
        lines.last().unwrap()["error"],
        "pull model manifest: 401: unknown key"
    );
    let s3 = server(
        dir2.path(),
        RegistryOptions {
            key_path: Some("/nonexistent/id_ed25519".into()),
            ..opts()
        },
    );
    let lines = post(
        s3.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(
        lines.last().unwrap()["error"],
        "pull model manifest: open /nonexistent/id_ed25519: no such file or directory"
    );

    // A realm on another host never gets a signed request.
    fx.faults(|f| f.realm_host = Some("evil.example:80".into()));
    fx.reg.clear_log();
    let lines = post(
        s2.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(
        lines.last().unwrap()["error"],
        format!(
            "pull model manifest: realm host \"evil.example:80\" does not match original host \"{}\"",
            fx.host()
        )
    );
    assert!(fx.reg.log().iter().all(|l| !l.starts_with("GET /token")));
    assert_eq!(files(&dir2.path().join("manifests")), Vec::<String>::new());
}

#[test]
fn create_from_a_missing_model_pulls_it_first() {
    let fx = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    // Ollama pulls a missing FROM model without `insecure`, so over https: the plain
    // http fixture cannot answer it, and the create fails with the pull's error.
    let from = format!("{}/library/base", fx.host());
    let r = post(
        s.addr,
        "/api/create",
        &json!({"model": "derived", "from": from}),
    );
    let lines = r.lines();
    assert_eq!(statuses(&lines)[0], "pulling manifest", "{lines:?}");
    let err = lines.last().unwrap()["error"].as_str().unwrap().to_string();
    assert!(err.starts_with("pull model manifest: https://"), "{err}");
    assert_eq!(files(&dir.path().join("manifests")), Vec::<String>::new());
    // A present FROM model is not pulled.
    create_smol(s.addr, "base");
    let r = post(
        s.addr,
        "/api/create",
        &json!({"model": "derived", "from": "base", "stream": false}),
    );
    assert_eq!((r.status, r.json()), (200, json!({"status": "success"})));
}

#[test]
fn concurrent_pulls_of_one_blob_download_it_once() {
    let fx = Fixture::start();
    let size = 8_000_000;
    let (model, _) = seed_synthetic(&fx, "library/shared", "latest", size);
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    let name = format!("{}/library/shared", fx.host());
    let addr = s.addr;
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let name = name.clone();
            std::thread::spawn(move || {
                post(addr, "/api/pull", &json!({"model": name, "insecure": true})).lines()
            })
        })
        .collect();
    for p in pulls {
        let lines = p.join().unwrap();
        assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
        let last = lines
            .iter()
            .rev()
            .find(|l| l["digest"] == model.as_str())
            .unwrap();
        assert_eq!(last["completed"], size);
    }
    let served = fx.reg.served.lock().unwrap().get(&model).copied().unwrap();
    // One download (plus the 1-byte probe of the direct URL).
    assert!(served <= size as u64 + 1, "served {served}");
}

#[test]
fn a_client_hang_up_stops_the_pull_and_a_later_pull_resumes() {
    let fx = Fixture::start();
    let size = 6_000_000;
    let (model, _) = seed_synthetic(&fx, "library/slow", "latest", size);
    fx.faults(|f| f.throttle = Some(Duration::from_millis(20)));
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), opts());
    let name = format!("{}/library/slow", fx.host());

    let mut st = stream(
        s.addr,
        "POST",
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    );
    loop {
        let line: Value = serde_json::from_str(&st.next_line().expect("a progress line")).unwrap();
        if line["digest"] == model.as_str() && line["completed"].as_u64().unwrap_or(0) > 0 {
            break;
        }
    }
    drop(st);
    // The download stops soon after: the bytes produced stop growing well short of the blob.
    std::thread::sleep(Duration::from_millis(800));
    let a = *fx.reg.streamed.lock().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let b = *fx.reg.streamed.lock().unwrap();
    assert_eq!(a, b, "still downloading after the hang-up");
    assert!(b < size as u64, "{b}");
    assert_eq!(files(&dir.path().join("manifests")), Vec::<String>::new());
    let partial = format!("sha256-{}-partial", &model[7..]);
    assert!(files(&dir.path().join("blobs")).contains(&partial));

    fx.faults(|f| f.throttle = None);
    fx.reg.clear_log();
    let lines = post(
        s.addr,
        "/api/pull",
        &json!({"model": name, "insecure": true}),
    )
    .lines();
    assert_eq!(statuses(&lines).last().unwrap(), "success", "{lines:?}");
    let log = fx.reg.log();
    assert!(
        log.iter().any(|l| l.contains(&model)
            && l.contains("bytes=")
            && !l.ends_with("bytes=0-0")
            && !l.contains("bytes=0-")),
        "resumed from an offset: {log:?}"
    );
}
