//! Push: each blob the registry lacks (`HEAD`) is uploaded (`POST uploads/`, optionally
//! as a cross-repo mount, then `PATCH` parts chained through the returned locations, then
//! `PUT ?digest=…&etag=…`), then the manifest is `PUT`.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use ureq::http::{Method, StatusCode};

use super::{part_size, status_error, upload_location, url, Body, Progress, Session};
use crate::api::{ApiError, ProgressResponse};
use crate::store::{gojson, Digest, Layer, ModelName, Store, StoreError, MEDIA_TYPE_MANIFEST};

const PROGRESS_EVERY: Duration = Duration::from_millis(60);

pub(super) fn push(
    s: &Session<'_>,
    store: &Store,
    name: &ModelName,
    progress: Progress<'_>,
) -> Result<(), ApiError> {
    progress(ProgressResponse::status("retrieving manifest"));
    let stored = match store.read_manifest(name) {
        Ok(m) => m,
        Err(e) => {
            progress(ProgressResponse::status("couldn't retrieve manifest"));
            return Err(match e {
                StoreError::NotFound(_) => ApiError::internal(format!(
                    "open {}: no such file or directory",
                    store.manifest_path(name).display()
                )),
                e => ApiError::new(e.status_code(), e.to_string()),
            });
        }
    };
    let m = &stored.manifest;
    let config = (!m.config.digest.is_empty()).then_some(&m.config);
    let mut seen = HashSet::new();
    for layer in m.layers.iter().chain(config) {
        let d = layer
            .digest()
            .map_err(|e| ApiError::new(e.status_code(), e.to_string()))?;
        if seen.insert(d.clone()) {
            s.check_cancel()?;
            upload_blob(s, store, &d, layer, progress)?;
        }
    }

    s.check_cancel()?;
    progress(ProgressResponse::status("pushing manifest"));
    // Go's json.Marshal: the encoder's form without its trailing newline.
    let mut body = gojson::to_vec(m);
    body.pop();
    let url = s.url(&format!("manifests/{}", stored.name.tag()));
    let resp = s.send(
        Method::PUT,
        &url,
        &[("Content-Type", MEDIA_TYPE_MANIFEST)],
        &Body::Bytes(&body),
    )?;
    if resp.status().as_u16() >= 400 {
        return Err(status_error(resp));
    }
    Ok(())
}

fn upload_blob(
    s: &Session<'_>,
    store: &Store,
    d: &Digest,
    layer: &Layer,
    progress: Progress<'_>,
) -> Result<(), ApiError> {
    let total = store
        .blob_size(d)
        .map_err(|e| ApiError::new(e.status_code(), e.to_string()))?;
    if total != layer.size {
        return Err(ApiError::internal(format!(
            "blob {d} is {total} bytes, the manifest says {}",
            layer.size
        )));
    }
    let status = format!("pushing {}", d.short());
    let progress = RefCell::new(progress);
    let report = |completed: u64| {
        (progress.borrow_mut())(ProgressResponse {
            status: status.clone(),
            digest: d.to_string(),
            total,
            completed,
        })
    };

    let blob_url = s.url(&format!("blobs/{d}"));
    let resp = s.send(Method::HEAD, &blob_url, &[], &Body::Empty)?;
    let st = resp.status();
    if st.is_success() || st.is_redirection() {
        report(total);
        return Ok(());
    }
    if st != StatusCode::NOT_FOUND {
        return Err(status_error(resp));
    }

    let mut post = s.url("blobs/uploads/");
    if let Some(from) = mount_source(&layer.from) {
        post = url::with_query(&post, &[("mount", &d.to_string()), ("from", &from)]);
    }
    let resp = s.send(Method::POST, &post, &[], &Body::Bytes(&[]))?;
    if resp.status() == StatusCode::CREATED {
        report(total);
        return Ok(());
    }
    if resp.status().as_u16() >= 400 {
        return Err(status_error(resp));
    }
    let mut next = location(&post, &resp)?;

    let path = store.blob_path(d);
    let size = part_size(s.opts(), total);
    let mut md5s = Vec::new();
    let mut offset = 0u64;
    report(0);
    while offset < total {
        s.check_cancel()?;
        let len = size.min(total - offset);
        md5s.extend_from_slice(&part_md5(&path, offset, len)?);
        let last = Cell::new(Instant::now());
        let sent = |n: u64| {
            if last.get().elapsed() >= PROGRESS_EVERY {
                last.set(Instant::now());
                report(offset + n);
            }
        };
        let body = Body::File {
            path: &path,
            offset,
            len,
            sent: Some(&sent),
        };
        next = upload_part(s, &next, offset, len, &body)?;
        offset += len;
        report(offset);
    }

    let etag = format!("{:x}-{}", Md5::digest(&md5s), md5s.len() / 16);
    let commit = url::with_query(&next, &[("digest", &d.to_string()), ("etag", &etag)]);
    let resp = s.send(
        Method::PUT,
        &commit,
        &[("Content-Type", "application/octet-stream")],
        &Body::Bytes(&[]),
    )?;
    if resp.status().as_u16() >= 400 {
        return Err(status_error(resp));
    }
    report(total);
    Ok(())
}

/// `from` of an inherited layer (`llama3.2:latest`) as the mount source `library/llama3.2`.
fn mount_source(from: &str) -> Option<String> {
    if from.is_empty() {
        return None;
    }
    let n = ModelName::parse(from).ok()?;
    Some(format!("{}/{}", n.namespace(), n.model()))
}

/// The next upload URL from a response, resolved against the request URL.
fn location(
    request_url: &str,
    resp: &ureq::http::Response<ureq::Body>,
) -> Result<String, ApiError> {
    let loc = upload_location(resp)
        .ok_or_else(|| ApiError::internal("registry sent no upload location"))?;
    url::resolve(request_url, &loc).ok_or_else(|| {
        ApiError::internal(format!(
            "bad upload location {}",
            crate::store::go_quote(&loc)
        ))
    })
}

/// `PATCH` one part (retried with backoff); a `307` re-sends it as `PUT` to the
/// redirect (object storage, no auth). Returns the URL for the next request.
fn upload_part(
    s: &Session<'_>,
    url_now: &str,
    offset: u64,
    len: u64,
    body: &Body<'_>,
) -> Result<String, ApiError> {
    let range = format!("{}-{}", offset, offset + len - 1);
    let headers = [
        ("Content-Type", "application/octet-stream"),
        ("X-Redirect-Uploads", "1"),
        ("Content-Range", range.as_str()),
    ];
    let mut tries = 0u32;
    loop {
        let result = (|| {
            let resp = s.send(Method::PATCH, url_now, &headers, body)?;
            let st = resp.status();
            if st == StatusCode::TEMPORARY_REDIRECT {
                let next = location(url_now, &resp)?;
                let redirect = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url::resolve(url_now, l))
                    .ok_or_else(|| ApiError::internal("http: no Location header in response"))?;
                let put = s.raw(
                    Method::PUT,
                    &redirect,
                    &[("Content-Type", "application/octet-stream")],
                    body,
                    None,
                )?;
                if put.status().as_u16() >= 400 {
                    return Err(status_error(put));
                }
                return Ok(next);
            }
            if st.as_u16() >= 400 {
                return Err(status_error(resp));
            }
            // Registries answer 202 with the URL for the next chunk.
            match upload_location(&resp) {
                Some(_) => location(url_now, &resp),
                None => Ok(url_now.to_string()),
            }
        })();
        match result {
            Ok(next) => return Ok(next),
            Err(e) => {
                tries += 1;
                if tries >= s.opts().max_retries || super::permanent(&e) {
                    return Err(e);
                }
                std::thread::sleep(s.opts().retry_base * 2u32.saturating_pow(tries - 1));
            }
        }
    }
}

fn part_md5(path: &std::path::Path, offset: u64, len: u64) -> Result<[u8; 16], ApiError> {
    let io = |e: std::io::Error| ApiError::internal(format!("read {}: {e}", path.display()));
    let mut f = File::open(path).map_err(io)?;
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut r = f.take(len);
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(io)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    if n != len {
        return Err(ApiError::internal(format!(
            "read {}: blob shrank while pushing",
            path.display()
        )));
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_sources() {
        assert_eq!(
            mount_source("llama3.2:latest").as_deref(),
            Some("library/llama3.2")
        );
        assert_eq!(mount_source("user/m:q4").as_deref(), Some("user/m"));
        assert_eq!(mount_source(""), None);
        assert_eq!(mount_source("a//b"), None);
    }
}
