//! The model store against a store laid out exactly as Ollama writes it, plus
//! blob/manifest operations and hostile names and digests.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrite_server::store::*;

/// Writes a blob the way Ollama stores it and returns its digest string.
fn blob(root: &Path, bytes: &[u8]) -> String {
    let d = Digest::of_bytes(bytes);
    fs::create_dir_all(root.join("blobs")).unwrap();
    fs::write(root.join("blobs").join(d.file_name()), bytes).unwrap();
    d.to_string()
}

fn manifest_file(root: &Path, parts: [&str; 4], bytes: &[u8]) -> PathBuf {
    let mut p = root.join("manifests");
    for part in parts {
        p.push(part);
    }
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    p
}

const TEMPLATE: &str = "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n";
const LICENSE: &str = "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT";
const PARAMS: &str = "{\"stop\":[\"<|start_header_id|>\",\"<|end_header_id|>\",\"<|eot_id|>\"]}";

struct Ollama {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: String,
    config: String,
    manifest_bytes: Vec<u8>,
}

/// `llama3.2:latest` as `ollama pull` leaves it: pulled manifest bytes (indented
/// JSON from the registry, stored verbatim), config per the spec's example.
fn ollama_store() -> Ollama {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let model = blob(&root, b"GGUF fake weights");
    let template = blob(&root, TEMPLATE.as_bytes());
    let license = blob(&root, LICENSE.as_bytes());
    let params = blob(&root, PARAMS.as_bytes());
    let config_json = br#"{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"3.2B","file_type":"Q4_K_M","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config = blob(&root, config_json);
    let manifest = format!(
        r#"{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "{config}", "size": {}}},
  "layers": [
    {{"mediaType": "application/vnd.ollama.image.model", "digest": "{model}", "size": 17}},
    {{"mediaType": "application/vnd.ollama.image.template", "digest": "{template}", "size": {}}},
    {{"mediaType": "application/vnd.ollama.image.license", "digest": "{license}", "size": {}}},
    {{"mediaType": "application/vnd.ollama.image.params", "digest": "{params}", "size": {}}}
  ]
}}"#,
        config_json.len(),
        TEMPLATE.len(),
        LICENSE.len(),
        PARAMS.len()
    );
    manifest_file(
        &root,
        ["registry.ollama.ai", "library", "llama3.2", "latest"],
        manifest.as_bytes(),
    );
    Ollama {
        _dir: dir,
        root,
        model,
        config,
        manifest_bytes: manifest.into_bytes(),
    }
}

#[test]
fn reads_a_store_written_by_ollama() {
    let o = ollama_store();
    let store = Store::open(&o.root).unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    let m = &list[0];
    assert_eq!(
        (m.name.as_str(), m.model.as_str()),
        ("llama3.2:latest", "llama3.2:latest")
    );
    assert_eq!(m.digest, Digest::of_bytes(&o.manifest_bytes).hex());
    let config_len = fs::metadata(
        o.root
            .join("blobs")
            .join(Digest::parse(&o.config).unwrap().file_name()),
    )
    .unwrap()
    .len();
    assert_eq!(
        m.size,
        17 + TEMPLATE.len() as u64 + LICENSE.len() as u64 + PARAMS.len() as u64 + config_len
    );
    assert_eq!(
        m.details,
        ModelDetails {
            parent_model: String::new(),
            format: "gguf".into(),
            family: "llama".into(),
            families: Some(vec!["llama".into()]),
            parameter_size: "3.2B".into(),
            quantization_level: "Q4_K_M".into(),
        }
    );
    let json = serde_json::to_value(m).unwrap();
    assert!(json["modified_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json["details"]["families"], serde_json::json!(["llama"]));

    let r = store.resolve("llama3.2").unwrap();
    assert_eq!(r.short_name(), "llama3.2:latest");
    assert_eq!(r.template.as_deref(), Some(TEMPLATE));
    assert_eq!(r.license, [LICENSE]);
    assert_eq!(r.system, None);
    assert_eq!(
        serde_json::Value::Object(r.parameters.clone()),
        serde_json::from_str::<serde_json::Value>(PARAMS).unwrap()
    );
    assert_eq!(
        r.model_path.as_deref(),
        Some(
            o.root
                .join("blobs")
                .join(Digest::parse(&o.model).unwrap().file_name())
                .as_path()
        )
    );
    assert_eq!(r.digest, m.digest);
    assert_eq!(r.details.quantization_level, "Q4_K_M");
}

#[test]
fn names_match_case_insensitively_and_keep_existing_casing() {
    let o = ollama_store();
    let store = Store::open(&o.root).unwrap();
    for n in [
        "LLAMA3.2",
        "Llama3.2:LATEST",
        "registry.ollama.ai/library/llama3.2",
        "REGISTRY.OLLAMA.AI/Library/llama3.2:latest",
    ] {
        let r = store.resolve(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(
            r.name.to_string(),
            "registry.ollama.ai/library/llama3.2:latest"
        );
    }
    // Copying to a differently cased existing name writes to the existing path.
    store
        .copy(
            &ModelName::parse("llama3.2").unwrap(),
            &ModelName::parse("LLAMA3.2:Backup").unwrap(),
        )
        .unwrap();
    assert!(o
        .root
        .join("manifests/registry.ollama.ai/library/llama3.2/Backup")
        .is_file());
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn display_forms_in_the_list() {
    let o = ollama_store();
    let src = o.manifest_bytes.clone();
    for parts in [
        ["registry.ollama.ai", "user", "m", "q4"],
        ["example.com:5000", "ns", "m", "latest"],
    ] {
        manifest_file(&o.root, parts, &src);
    }
    // Not a valid name, or not at depth four: skipped.
    manifest_file(
        &o.root,
        ["registry.ollama.ai", "library", "bad model", "latest"],
        &src,
    );
    manifest_file(
        &o.root,
        ["registry.ollama.ai", "library", "m", ".tmp-123"],
        &src,
    );
    let store = Store::open(&o.root).unwrap();
    let mut names: Vec<String> = store.list().unwrap().into_iter().map(|m| m.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "example.com:5000/ns/m:latest",
            "llama3.2:latest",
            "user/m:q4"
        ]
    );
}

#[test]
fn corrupt_entries_are_skipped_by_list() {
    let o = ollama_store();
    manifest_file(
        &o.root,
        ["registry.ollama.ai", "library", "broken", "latest"],
        b"{nope",
    );
    let store = Store::open(&o.root).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    let e = store.resolve("broken").unwrap_err();
    assert_eq!(e.status_code(), 500);
    let e = store.resolve("nothere").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model \"nothere\" not found, try pulling it first"
    );
    assert_eq!(e.status_code(), 404);
}

#[test]
fn blobs_are_verified_while_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = vec![7u8; 3 << 20];
    let d = Digest::of_bytes(&data);
    assert_eq!(store.put_blob(&d, &data[..]).unwrap(), BlobPut::Created);
    assert_eq!(fs::read(store.blob_path(&d)).unwrap(), data);
    assert_eq!(
        store.put_blob(&d, &b"not read"[..]).unwrap(),
        BlobPut::Existed
    );

    let other = Digest::of_bytes(b"expected");
    let e = store.put_blob(&other, &b"actual"[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "digest mismatch, expected \"{other}\", got \"{}\"",
            Digest::of_bytes(b"actual")
        )
    );
    assert_eq!(e.status_code(), 400);
    let names: Vec<String> = fs::read_dir(store.blobs_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        [d.file_name()],
        "no temp file or bad blob left behind"
    );

    let w = store.write_blob(&b"hello"[..]).unwrap();
    assert!(w.created);
    assert_eq!((w.digest.clone(), w.size), (Digest::of_bytes(b"hello"), 5));
    assert!(!store.write_blob(&b"hello"[..]).unwrap().created);
    assert!(store.blob_exists(&w.digest));
    assert_eq!(store.blob_size(&w.digest).unwrap(), 5);
    let missing = Digest::of_bytes(b"missing");
    let e = store.blob_size(&missing).unwrap_err();
    assert_eq!(e.to_string(), format!("blob \"{missing}\" not found"));
    assert_eq!(e.status_code(), 404);
}

/// Every file under `dir`, for "nothing was written outside" checks.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            out.extend(tree(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_names_and_digests_never_touch_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    let root = dir.path().join("models");
    let store = Store::open(&root).unwrap();
    let before = tree(dir.path());
    let long = "a".repeat(81);
    let names = [
        "../outside/secret",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "..",
        ".",
        "./x",
        "x/..",
        "ns/../m",
        "h/ns/..:latest",
        "m:..",
        "m:../../x",
        "😀",
        "mo\u{2044}del",
        "m\u{0}",
        "m\\..\\x",
        long.as_str(),
        "C:\\Windows",
        "",
    ];
    for n in names {
        let e = store.resolve(n).unwrap_err();
        assert!(matches!(e, StoreError::InvalidName(_)), "{n:?}: {e:?}");
        assert_eq!(e.to_string(), "invalid model name");
        assert!(ModelName::parse(n).is_err(), "{n:?}");
    }
    for d in [
        "../outside/secret",
        "sha256:../../outside/secret",
        "sha256-/etc/passwd",
        "/abs",
        "sha256:",
    ] {
        let e = Digest::parse(d).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.status_code()),
            ("invalid digest format", 400)
        );
    }
    // A manifest (e.g. from a malicious registry) naming paths as digests is refused
    // before any blob path is formed.
    let evil = br#"{"schemaVersion":2,"config":{"digest":"sha256:../../../outside/secret","size":1},"layers":[]}"#;
    let name = ModelName::parse("evil").unwrap();
    assert!(matches!(
        store.write_manifest_raw(&name, evil),
        Err(StoreError::InvalidDigest(_))
    ));
    manifest_file(
        &root,
        ["registry.ollama.ai", "library", "evil", "latest"],
        evil,
    );
    assert!(matches!(
        store.resolve("evil"),
        Err(StoreError::InvalidDigest(_))
    ));
    fs::remove_dir_all(root.join("manifests/registry.ollama.ai")).unwrap();
    assert_eq!(tree(dir.path()), before);
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
}

fn two_models_sharing_a_blob(store: &Store) -> (Digest, Digest, Digest) {
    let shared = store.write_blob(&b"shared weights"[..]).unwrap().digest;
    let only_a = store.write_blob(&b"system a"[..]).unwrap().digest;
    let cfg = store.write_blob(&b"{}"[..]).unwrap().digest;
    let layer = |mt: &str, d: &Digest| Layer::new(mt, d, store.blob_size(d).unwrap());
    store
        .write_manifest(
            &ModelName::parse("a").unwrap(),
            &Manifest::new(
                layer(MEDIA_TYPE_CONFIG, &cfg),
                vec![
                    layer(MEDIA_TYPE_MODEL, &shared),
                    layer(MEDIA_TYPE_SYSTEM, &only_a),
                ],
            ),
        )
        .unwrap();
    store
        .write_manifest(
            &ModelName::parse("user/b:v1").unwrap(),
            &Manifest::new(
                layer(MEDIA_TYPE_CONFIG, &cfg),
                vec![layer(MEDIA_TYPE_MODEL, &shared)],
            ),
        )
        .unwrap();
    (shared, only_a, cfg)
}

#[test]
fn copy_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (shared, only_a, cfg) = two_models_sharing_a_blob(&store);
    let a = ModelName::parse("a").unwrap();
    let a_path = store.manifest_path(&a);
    let bytes = fs::read(&a_path).unwrap();
    assert!(
        bytes.ends_with(b"]}\n"),
        "Go encoder form with trailing newline"
    );

    let c = ModelName::parse("c:copy").unwrap();
    store.copy(&a, &c).unwrap();
    assert_eq!(fs::read(store.manifest_path(&c)).unwrap(), bytes);
    store.copy(&a, &a).unwrap();
    let e = store
        .copy(&ModelName::parse("nope").unwrap(), &c)
        .unwrap_err();
    assert_eq!(e.status_code(), 404);

    // Deleting a: its private blob stays while the copy references it.
    store.delete(&a).unwrap();
    assert!(!a_path.exists());
    assert!(store.blob_exists(&only_a) && store.blob_exists(&shared));
    store.delete(&c).unwrap();
    assert!(!store.blob_exists(&only_a), "no longer referenced");
    assert!(
        store.blob_exists(&shared) && store.blob_exists(&cfg),
        "b still uses them"
    );
    assert!(
        !dir.path()
            .join("manifests/registry.ollama.ai/library")
            .exists(),
        "empty directories pruned"
    );
    store
        .delete(&ModelName::parse("user/b:v1").unwrap())
        .unwrap();
    assert!(!store.blob_exists(&shared) && !store.blob_exists(&cfg));
    assert!(fs::read_dir(store.manifests_dir())
        .unwrap()
        .next()
        .is_none());
    let e = store.delete(&a).unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)));
}

fn age(path: &Path, secs: u64) {
    let f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn startup_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (shared, only_a, cfg) = two_models_sharing_a_blob(&store);
    let old_orphan = store.write_blob(&b"old orphan"[..]).unwrap().digest;
    let new_orphan = store.write_blob(&b"fresh upload"[..]).unwrap().digest;
    let stale = store.blobs_dir().join("sha256-123456-partial");
    fs::write(&stale, b"x").unwrap();
    for d in [&shared, &only_a, &cfg, &old_orphan] {
        age(&store.blob_path(d), 7200);
    }
    age(&stale, 7200);

    let noprune = Store::new(dir.path()).with_noprune(true);
    assert_eq!(noprune.prune().unwrap(), PruneReport::default());
    assert!(store.blob_exists(&old_orphan));

    let r = store.prune().unwrap();
    assert_eq!(
        r,
        PruneReport {
            removed_blobs: 1,
            removed_other: 1,
            skipped_corrupt_manifest: false
        }
    );
    assert!(!store.blob_exists(&old_orphan) && !stale.exists());
    for d in [&shared, &only_a, &cfg, &new_orphan] {
        assert!(store.blob_exists(d));
    }

    // Any unreadable manifest stops the prune: it could reference anything.
    manifest_file(
        dir.path(),
        ["registry.ollama.ai", "library", "bad", "latest"],
        b"{",
    );
    age(&store.blob_path(&new_orphan), 7200);
    assert!(store.prune().unwrap().skipped_corrupt_manifest);
    assert!(store.blob_exists(&new_orphan));
}

#[test]
fn legacy_colon_blob_names_are_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Digest::of_bytes(b"legacy");
    fs::create_dir_all(dir.path().join("blobs")).unwrap();
    let legacy = dir.path().join("blobs").join(format!("sha256:{}", d.hex()));
    fs::write(&legacy, b"legacy").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(!legacy.exists());
    assert!(store.blob_exists(&d));
}

#[test]
fn written_manifests_round_trip_and_replace_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (_, _, _) = two_models_sharing_a_blob(&store);
    let name = ModelName::parse("a").unwrap();
    let first = store.read_manifest(&name).unwrap();
    let mut m = first.manifest.clone();
    m.layers.pop();
    store.write_manifest(&name, &m).unwrap();
    let second = store.read_manifest(&name).unwrap();
    assert_eq!(second.manifest, m);
    assert_ne!(second.digest, first.digest);
    let leftovers: Vec<_> = fs::read_dir(store.manifest_path(&name).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["latest"]);
}
