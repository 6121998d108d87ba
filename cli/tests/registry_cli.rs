//! `ferrite pull` / `ferrite push` end to end: the CLI against a `ferrite serve` child
//! process against the in-process test registry of the server crate.

#[path = "../../server/tests/registry/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fixture::{Fixture, MANIFEST_TYPE};
use serde_json::json;

struct Serve {
    child: Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(root: &Path) -> Serve {
    std::fs::create_dir_all(root.join("home")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrite"));
    cmd.arg("serve");
    for (k, _) in std::env::vars() {
        if k.starts_with("OLLAMA_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("OLLAMA_HOST", "127.0.0.1:0")
        .env("OLLAMA_MODELS", root.join("models"))
        .env("HOME", root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferrite serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Listening on ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ferrite serve did not start");
    Serve { child, addr }
}

fn cli(s: &Serve, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .env("OLLAMA_HOST", &s.addr)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn pull_and_push_through_the_cli() {
    let fx = Fixture::start();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let model = fx.reg.seed_blob("library/syn", data);
    let config = br#"{"model_format":"gguf","model_family":"llama"}"#;
    let config_digest = fx.reg.seed_blob("library/syn", config.to_vec());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.ollama.image.model",
                    "digest": model, "size": 3_000_000}],
    });
    fx.reg.seed_manifest(
        "library/syn",
        "latest",
        serde_json::to_vec(&manifest).unwrap(),
    );

    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("registry-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let s = serve(&root);
    let name = format!("{}/library/syn", fx.host());

    let out = cli(&s, &["pull", &name, "--insecure"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "pulling manifest", "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("pulling {} 100%", &model[7..19]))),
        "{err}"
    );
    assert_eq!(
        &lines[lines.len() - 3..],
        ["verifying sha256 digest", "writing manifest", "success"],
        "{err}"
    );
    let list = text(&cli(&s, &["list"]).stdout);
    assert!(list.contains(&format!("{name}:latest")), "{list}");
    assert!(root
        .join("models/blobs")
        .join(format!("sha256-{}", &model[7..]))
        .is_file());

    // Push a copy under another namespace.
    let copy = format!("{}/me/syn:v2", fx.host());
    assert!(cli(&s, &["cp", &name, &copy]).status.success());
    let out = cli(&s, &["push", &copy, "--insecure"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!("\nYou can find your model at:\n\n\t{copy}\n")
    );
    assert!(text(&out.stderr).contains("pushing manifest"));
    assert!(fx.reg.manifest("me/syn", "v2").is_some());

    // Unknown model; http without --insecure.
    let out = cli(
        &s,
        &["pull", &format!("{}/library/nope", fx.host()), "--insecure"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).ends_with("Error: pull model manifest: file does not exist\n"),
        "{out:?}"
    );
    let out = cli(&s, &["pull", &format!("http://{name}")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).ends_with("Error: insecure protocol http\n"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
