//! The model-management verbs: `list`, `ps`, `show`, `cp`, `rm`, `stop`, `pull`,
//! `push`, `create`, `signin`, `signout` and `--version`, each one or a few API
//! calls with Ollama's output.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use server::modelfile::Modelfile;
use server::store::ModelName;
use unicode_width::UnicodeWidthStr;

use crate::client::{ApiError, Client};
use crate::format::{self, human_bytes, human_number, human_time, Table};
use crate::progress::{Id, Progress};

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn int_of(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

/// The first 12 characters of a digest (the `ID` column).
fn short_id(digest: &str) -> &str {
    let d = digest.strip_prefix("sha256:").unwrap_or(digest);
    d.get(..12).unwrap_or(d)
}

fn models(resp: &Value) -> &[Value] {
    resp.get("models")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

// ---- list / ps -----------------------------------------------------------------

/// `ollama list [prefix]`: the table of `/api/tags`, filtered by a
/// case-insensitive name prefix.
pub fn list(client: &Client, prefix: Option<&str>) -> Result<String, ApiError> {
    let resp = client.get("/api/tags")?;
    let mut table = Table::new(Some(&["NAME", "ID", "SIZE", "MODIFIED"]));
    let prefix = prefix.map(str::to_lowercase);
    for m in models(&resp) {
        let name = str_of(m, "name");
        if prefix
            .as_deref()
            .is_some_and(|p| !name.to_lowercase().starts_with(p))
        {
            continue;
        }
        let size = if str_of(m, "remote_host").is_empty() {
            human_bytes(int_of(m, "size"))
        } else {
            "-".to_string()
        };
        table.row(vec![
            name.to_string(),
            short_id(str_of(m, "digest")).to_string(),
            size,
            human_time(str_of(m, "modified_at"), "Never"),
        ]);
    }
    Ok(table.render())
}

/// The PROCESSOR column: share of the model in CPU vs GPU memory.
pub fn processor(size: i64, size_vram: i64) -> String {
    if size_vram == 0 {
        "100% CPU".into()
    } else if size_vram == size {
        "100% GPU".into()
    } else if size_vram > size || size == 0 {
        "Unknown".into()
    } else {
        let cpu = ((size - size_vram) as f64 / size as f64 * 100.0).round() as i64;
        format!("{cpu}%/{}% CPU/GPU", 100 - cpu)
    }
}

/// `ollama ps [prefix]`: the table of `/api/ps`.
pub fn ps(client: &Client, prefix: Option<&str>) -> Result<String, ApiError> {
    let resp = client.get("/api/ps")?;
    let mut table = Table::new(Some(&[
        "NAME",
        "ID",
        "SIZE",
        "PROCESSOR",
        "CONTEXT",
        "UNTIL",
    ]));
    let now = format::now_nanos();
    for m in models(&resp) {
        let model = match str_of(m, "model") {
            "" => str_of(m, "name"),
            s => s,
        };
        if prefix.is_some_and(|p| !model.starts_with(p)) {
            continue;
        }
        let expires = str_of(m, "expires_at");
        let until = match format::parse_rfc3339(expires) {
            Some(t) if t < now => "Stopping...".to_string(),
            _ => format::human_time_at(expires, "Never", now),
        };
        let size = int_of(m, "size");
        table.row(vec![
            str_of(m, "name").to_string(),
            short_id(str_of(m, "digest")).to_string(),
            human_bytes(size),
            processor(size, int_of(m, "size_vram")),
            int_of(m, "context_length").to_string(),
            until,
        ]);
    }
    Ok(table.render())
}

// ---- show ----------------------------------------------------------------------

/// Which single field `ollama show` prints instead of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowField {
    License,
    Modelfile,
    Parameters,
    System,
    Template,
}

/// `ollama show MODEL [--field] [-v]`.
pub fn show(
    client: &Client,
    model: &str,
    field: Option<ShowField>,
    verbose: bool,
) -> Result<String, ApiError> {
    let mut req = json!({ "model": model });
    if verbose {
        req["verbose"] = Value::Bool(true);
    }
    let resp = client.post("/api/show", &req)?;
    let caps = resp.get("capabilities").and_then(Value::as_array);
    if caps.is_some_and(|c| c.iter().any(|x| x == "image")) {
        return Err(ApiError::Other(
            "image generation models are not currently supported".into(),
        ));
    }
    Ok(match field {
        Some(ShowField::License) => format!("{}\n", str_of(&resp, "license")),
        Some(ShowField::Modelfile) => format!("{}\n", str_of(&resp, "modelfile")),
        Some(ShowField::Parameters) => format!("{}\n", str_of(&resp, "parameters")),
        Some(ShowField::System) => str_of(&resp, "system").to_string(),
        Some(ShowField::Template) => str_of(&resp, "template").to_string(),
        None => show_info(&resp, verbose),
    })
}

fn section(out: &mut String, header: &str, rows: Vec<Vec<String>>, wide: bool) {
    out.push_str("  ");
    out.push_str(header);
    out.push('\n');
    let mut t = Table::new(None);
    if wide {
        t.max_width = 100;
    }
    for r in rows {
        t.row(r);
    }
    out.push_str(&t.render());
    out.push('\n');
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| s.to_string()).collect()
}

/// A number from `model_info` as `strconv.FormatFloat(f, 'f', -1, 64)`.
fn plain_number(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_f64).map(|f| format!("{f}"))
}

/// The first `n` non-empty lines, trimmed, plus `...` when there are more.
fn head(s: &str, n: usize) -> Vec<Vec<String>> {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut rows: Vec<Vec<String>> = lines.iter().take(n).map(|l| row(&["", l])).collect();
    if lines.len() > n {
        rows.push(row(&["", "..."]));
    }
    rows
}

/// A `model_info` value in the `Metadata` section: lists cut to about 10 columns.
fn metadata_value(v: &Value) -> String {
    match v {
        Value::Bool(_) | Value::String(_) | Value::Number(_) => format::go_value(v),
        Value::Array(items) => {
            let mut total = 1;
            let mut shown = 0;
            for (i, item) in items.iter().enumerate() {
                let mut w = format::go_value(item).width();
                if i > 0 {
                    w += 2;
                }
                if total + w > 10 && i > 0 {
                    break;
                }
                total += w;
                shown += 1;
            }
            if shown < items.len() {
                let head = format::go_value(&Value::Array(items[..shown].to_vec()));
                format!(
                    "{} ...+{} more]",
                    head.trim_end_matches(']'),
                    items.len() - shown
                )
            } else {
                format::go_value(v)
            }
        }
        Value::Object(_) => "map[string]interface {}".into(),
        Value::Null => "<nil>".into(),
    }
}

/// The sectioned summary of an `/api/show` answer (`Model`, `Capabilities`,
/// `Projector`, `Parameters`, with `-v` `Metadata` and `Tensors`, `System`,
/// `License`).
pub fn show_info(resp: &Value, verbose: bool) -> String {
    let mut out = String::new();
    let details = resp.get("details").cloned().unwrap_or(Value::Null);
    let info = resp.get("model_info").filter(|v| v.is_object());

    let mut rows = Vec::new();
    if !str_of(resp, "remote_host").is_empty() {
        rows.push(row(&["", "Remote model", str_of(resp, "remote_model")]));
        rows.push(row(&["", "Remote URL", str_of(resp, "remote_host")]));
    }
    if let Some(info) = info {
        let arch = str_of(info, "general.architecture");
        if !arch.is_empty() {
            rows.push(row(&["", "architecture", arch]));
        }
        let params = match str_of(&details, "parameter_size") {
            "" => info
                .get("general.parameter_count")
                .and_then(Value::as_f64)
                .map(|f| human_number(f as u64))
                .unwrap_or_default(),
            s => s.to_string(),
        };
        if !params.is_empty() {
            rows.push(row(&["", "parameters", &params]));
        }
        if let Some(n) = plain_number(info.get(format!("{arch}.context_length"))) {
            rows.push(row(&["", "context length", &n]));
        }
        if let Some(n) = plain_number(info.get(format!("{arch}.embedding_length"))) {
            rows.push(row(&["", "embedding length", &n]));
        }
    } else {
        rows.push(row(&["", "architecture", str_of(&details, "family")]));
        rows.push(row(&["", "parameters", str_of(&details, "parameter_size")]));
    }
    rows.push(row(&[
        "",
        "quantization",
        str_of(&details, "quantization_level"),
    ]));
    if !str_of(resp, "requires").is_empty() {
        rows.push(row(&["", "requires", str_of(resp, "requires")]));
    }
    section(&mut out, "Model", rows, false);

    if let Some(caps) = resp
        .get("capabilities")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        let rows = caps
            .iter()
            .map(|c| row(&["", c.as_str().unwrap_or("")]))
            .collect();
        section(&mut out, "Capabilities", rows, false);
    }

    if let Some(proj) = resp.get("projector_info").filter(|v| v.is_object()) {
        let arch = str_of(proj, "general.architecture");
        let mut rows = Vec::new();
        if !arch.is_empty() {
            rows.push(row(&["", "architecture", arch]));
        }
        if let Some(n) = proj.get("general.parameter_count").and_then(Value::as_f64) {
            rows.push(row(&["", "parameters", &human_number(n as u64)]));
        }
        let projector_value = |suffix: &str| {
            ["vision", "audio"]
                .iter()
                .find_map(|m| plain_number(proj.get(format!("{arch}.{m}.{suffix}"))))
        };
        if let Some(n) = projector_value("embedding_length") {
            rows.push(row(&["", "embedding length", &n]));
        }
        if let Some(n) = projector_value("projection_dim") {
            rows.push(row(&["", "dimensions", &n]));
        }
        section(&mut out, "Projector", rows, false);
    }

    let params = str_of(resp, "parameters");
    if !params.is_empty() {
        let rows = params
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                std::iter::once(String::new())
                    .chain(l.split_whitespace().map(str::to_string))
                    .collect()
            })
            .collect();
        section(&mut out, "Parameters", rows, false);
    }

    if verbose {
        if let Some(Value::Object(map)) = info {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let rows = keys
                .into_iter()
                .map(|k| vec![String::new(), k.clone(), metadata_value(&map[k])])
                .collect();
            section(&mut out, "Metadata", rows, false);
        }
        if let Some(tensors) = resp
            .get("tensors")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
        {
            let rows = tensors
                .iter()
                .map(|t| {
                    vec![
                        String::new(),
                        str_of(t, "name").to_string(),
                        str_of(t, "type").to_string(),
                        format::go_value(t.get("shape").unwrap_or(&Value::Array(vec![]))),
                    ]
                })
                .collect();
            section(&mut out, "Tensors", rows, false);
        }
    }

    let system = str_of(resp, "system");
    if !system.is_empty() {
        section(&mut out, "System", head(system, 2), true);
    }
    let license = str_of(resp, "license");
    if !license.is_empty() {
        section(&mut out, "License", head(license, 2), true);
    }
    out
}

// ---- cp / rm / stop ------------------------------------------------------------

pub fn copy(client: &Client, source: &str, destination: &str) -> Result<String, ApiError> {
    client.post(
        "/api/copy",
        &json!({ "source": source, "destination": destination }),
    )?;
    Ok(format!("copied '{source}' to '{destination}'\n"))
}

/// Unloads a model: a load-only generate with `keep_alive: 0`.
pub fn unload(client: &Client, model: &str) -> Result<(), ApiError> {
    let p = Progress::new();
    p.spinner("");
    let result = client
        .stream(
            "/api/generate",
            &json!({ "model": model, "keep_alive": 0 }),
            None,
            &mut |_| Ok(()),
        )
        .map(|_| ());
    p.stop_and_clear();
    result
}

pub fn stop(client: &Client, model: &str) -> Result<(), String> {
    match unload(client, model) {
        Err(e) if e.to_string().contains("not found") => {
            Err(format!("couldn't find model \"{model}\" to stop"))
        }
        other => other.map_err(String::from),
    }
}

/// `ollama rm`: unloads (a failure other than not-found is a warning) and
/// deletes each model in turn, printing `deleted '<m>'`.
pub fn remove(client: &Client, names: &[String]) -> Result<(), String> {
    for name in names {
        if let Err(e) = unload(client, name) {
            if !e.to_string().to_lowercase().contains("not found") {
                eprintln!("Warning: unable to stop model '{name}'");
            }
        }
        client.request("DELETE", "/api/delete", Some(&json!({ "model": name })))?;
        println!("deleted '{name}'");
    }
    Ok(())
}

// ---- pull / push / create progress ---------------------------------------------

/// Draws the progress objects of `/api/pull`, `/api/push` and `/api/create`: a bar
/// per digest, a spinner per status, one spinner updated in place for
/// `quantizing ...`.
pub struct ProgressView {
    pub progress: Progress,
    verb: &'static str,
    status: String,
    spinner: Option<Id>,
    quantize: Option<Id>,
    bars: Vec<(String, Id)>,
}

impl ProgressView {
    pub fn new(verb: &'static str) -> ProgressView {
        ProgressView {
            progress: Progress::new(),
            verb,
            status: String::new(),
            spinner: None,
            quantize: None,
            bars: Vec::new(),
        }
    }

    /// Starts with a spinner already showing `status` (create's first step).
    pub fn with_status(verb: &'static str, status: &str) -> ProgressView {
        let mut v = ProgressView::new(verb);
        v.status = status.to_string();
        v.spinner = Some(v.progress.spinner(status));
        v
    }

    fn stop_spinner(&mut self) {
        if let Some(id) = self.spinner.take() {
            self.progress.stop_spinner(id);
        }
    }

    pub fn update(&mut self, chunk: &Value) {
        let status = str_of(chunk, "status");
        let digest = str_of(chunk, "digest");
        if !digest.is_empty() {
            self.stop_spinner();
            let completed = int_of(chunk, "completed");
            let id = match self.bars.iter().find(|(d, _)| d == digest) {
                Some((_, id)) => *id,
                None => {
                    let label = if status.is_empty() {
                        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
                        format!("{} {}...", self.verb, hex.get(..12).unwrap_or(hex))
                    } else {
                        status.to_string()
                    };
                    let id = self.progress.bar(&label, int_of(chunk, "total"), completed);
                    self.bars.push((digest.to_string(), id));
                    id
                }
            };
            self.progress.set_bar(id, completed);
        } else if status.contains("quantizing") {
            self.stop_spinner();
            match self.quantize {
                Some(id) => self.progress.set_message(id, status),
                None => self.quantize = Some(self.progress.spinner(status)),
            }
        } else if status != self.status {
            self.stop_spinner();
            self.status = status.to_string();
            self.spinner = Some(self.progress.spinner(status));
        }
    }

    pub fn finish(self) {
        self.progress.stop();
    }
}

fn progress_call(
    client: &Client,
    path: &str,
    body: &Value,
    mut view: ProgressView,
) -> Result<(), ApiError> {
    let result = client.stream(path, body, None, &mut |chunk| {
        view.update(chunk);
        Ok(())
    });
    view.finish();
    result.map(|_| ())
}

pub fn pull(client: &Client, model: &str, insecure: bool) -> Result<(), ApiError> {
    let mut body = json!({ "model": model });
    if insecure {
        body["insecure"] = Value::Bool(true);
    }
    progress_call(client, "/api/pull", &body, ProgressView::new("pulling"))
}

pub fn push(client: &Client, model: &str, insecure: bool) -> Result<String, String> {
    let mut body = json!({ "model": model });
    if insecure {
        body["insecure"] = Value::Bool(true);
    }
    if let Err(e) = progress_call(client, "/api/push", &body, ProgressView::new("pushing")) {
        let text = e.to_string().to_lowercase();
        if text.contains("access denied") || text.contains("unauthorized") {
            return Err("you are not authorized to push to this namespace, create the model under a namespace you own".into());
        }
        return Err(e.to_string());
    }
    let destination = match ModelName::parse(model) {
        Ok(n) if n.host().ends_with(".ollama.ai") || n.host().ends_with(".ollama.com") => {
            let short = n.display_shortest();
            format!(
                "https://ollama.com/{}",
                short.strip_suffix(":latest").unwrap_or(&short)
            )
        }
        Ok(n) => n.to_string(),
        Err(_) => model.to_string(),
    };
    Ok(format!(
        "\nYou can find your model at:\n\n\t{destination}\n"
    ))
}

/// `ollama create NAME [-f Modelfile] [-q level]`: parses the Modelfile here,
/// uploads the local files it names as blobs, then streams `/api/create`.
pub fn create(
    client: &Client,
    name: &str,
    file: Option<&Path>,
    quantize: Option<&str>,
) -> Result<(), String> {
    if ModelName::parse(name).is_err() {
        return Err(format!("invalid model name: {name}"));
    }
    let cwd = std::env::current_dir().map_err(|e| format!("getwd: {e}"))?;
    let (bytes, base_dir): (Vec<u8>, PathBuf) = match file {
        Some(f) => {
            let path = cwd.join(f);
            if !path.exists() {
                return Err("specified Modelfile wasn't found".into());
            }
            let bytes =
                std::fs::read(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or(cwd);
            (bytes, dir)
        }
        None => {
            let path = cwd.join("Modelfile");
            match std::fs::read(&path) {
                Ok(b) => (b, cwd),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (b"FROM .\n".to_vec(), cwd),
                Err(e) => return Err(format!("open {}: {e}", path.display())),
            }
        }
    };
    let modelfile = Modelfile::parse_bytes(&bytes).map_err(|e| e.to_string())?;

    let view = ProgressView::with_status("pulling", "gathering model components");
    let prepared = match modelfile.to_create_request(&base_dir) {
        Ok(p) => p,
        Err(e) => {
            view.finish();
            return Err(e.to_string());
        }
    };
    for w in &prepared.warnings {
        eprintln!("{w}");
    }
    let mut request = prepared.request;
    request.model = name.to_string();
    if let Some(q) = quantize.filter(|q| !q.is_empty()) {
        request.quantize = q.to_string();
    }

    for (path, digest) in &prepared.uploads {
        let digest = digest.to_string();
        if let Err(e) = upload(client, &view.progress, path, &digest) {
            view.finish();
            return Err(e.to_string());
        }
    }

    let body = serde_json::to_value(&request).map_err(|e| e.to_string())?;
    progress_call(client, "/api/create", &body, view).map_err(|e| {
        if e.to_string().contains("path or Modelfile are required") {
            "the ollama server must be updated to use `ollama create` with this client".into()
        } else {
            e.to_string()
        }
    })
}

/// One blob upload with its `copying file sha256:<hex> NN%` spinner.
fn upload(client: &Client, progress: &Progress, path: &Path, digest: &str) -> Result<(), ApiError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let id = progress.spinner(&format!("copying file {digest} 0%"));
    let sent = Arc::new(AtomicU64::new(0));
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| client.create_blob(digest, path, sent.clone()));
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(60));
            let pct = (sent.load(Ordering::SeqCst) * 100)
                .checked_div(size)
                .unwrap_or(100);
            progress.set_message(id, &format!("copying file {digest} {}%", pct.min(100)));
        }
        worker
            .join()
            .unwrap_or_else(|_| Err(ApiError::Other("upload thread panicked".into())))
    });
    if result.is_ok() {
        progress.set_message(id, &format!("copying file {digest} 100%"));
    }
    progress.stop_spinner(id);
    result
}

// ---- version / signin / signout ------------------------------------------------

/// `ollama -v`: the server's version, with Ollama's warnings.
pub fn version(client: &Client) -> String {
    let mut out = String::new();
    let server = match client.get("/api/version") {
        Ok(v) => str_of(&v, "version").to_string(),
        Err(_) => {
            out.push_str("Warning: could not connect to a running Ollama instance\n");
            String::new()
        }
    };
    if !server.is_empty() {
        out.push_str(&format!("ollama version is {server}\n"));
    }
    if server != crate::VERSION {
        out.push_str(&format!("Warning: client version is {}\n", crate::VERSION));
    }
    out
}

pub fn signin(client: &Client) -> Result<String, ApiError> {
    match client.post("/api/me", &Value::Object(Map::new())) {
        Ok(user) => {
            let name = str_of(&user, "name");
            Ok(if name.is_empty() {
                String::new()
            } else {
                format!("You are already signed in as user '{name}'\n\n")
            })
        }
        Err(ApiError::Status { code: 401, .. }) => {
            Ok("You need to be signed in to Ollama to run Cloud models.\n\n".into())
        }
        Err(e) => Err(e),
    }
}

pub fn signout(client: &Client) -> Result<String, ApiError> {
    match client.post("/api/signout", &Value::Object(Map::new())) {
        Ok(_) => Ok("You have signed out of ollama.com\n\n".into()),
        Err(ApiError::Status { code: 401, .. }) => {
            Ok("You are not signed in to ollama.com\n\n".into())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors() {
        assert_eq!(processor(100, 100), "100% GPU");
        assert_eq!(processor(100, 0), "100% CPU");
        assert_eq!(processor(100, 52), "48%/52% CPU/GPU");
        assert_eq!(processor(100, 200), "Unknown");
    }

    #[test]
    fn show_summary_layout() {
        let resp = json!({
            "details": {"parameter_size": "3.2B", "quantization_level": "Q4_K_M", "family": "llama"},
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072,
                           "llama.embedding_length": 3072, "general.parameter_count": 3212749888u64,
                           "tokenizer.ggml.tokens": ["a", "b", "c", "d", "e", "f"]},
            "capabilities": ["completion", "tools"],
            "parameters": "stop                           \"<|start_header_id|>\"\nstop                           \"<|eot_id|>\"",
            "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024\n\nmore",
        });
        let out = show_info(&resp, false);
        let trimmed: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert_eq!(
            trimmed,
            [
                "  Model",
                "    architecture        llama",
                "    parameters          3.2B",
                "    context length      131072",
                "    embedding length    3072",
                "    quantization        Q4_K_M",
                "",
                "  Capabilities",
                "    completion",
                "    tools",
                "",
                "  Parameters",
                "    stop    \"<|start_header_id|>\"",
                "    stop    \"<|eot_id|>\"",
                "",
                "  License",
                "    LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
                "    Llama 3.2 Version Release Date: September 25, 2024",
                "    ...",
                "",
            ]
        );
        let verbose = show_info(&resp, true);
        assert!(verbose.contains("  Metadata\n"), "{verbose}");
        assert!(
            verbose.contains("    tokenizer.ggml.tokens      [a b c ...+3 more]"),
            "{verbose}"
        );
        assert!(
            verbose.contains("    general.parameter_count    3.212749888e+09"),
            "{verbose}"
        );
    }
}
