//! Registry requests that are neither a pull nor a push, for `list-tags` and `delete`: the
//! tag list (following `Link` pages as skopeo does), and deleting a manifest, which
//! oci-client has no call for, so it is made here with reqwest on the same terms (TLS,
//! plain HTTP, CAs) the client was given, with a token asked for the `delete` action.
use oci_client::{Reference, RegistryOperation};
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::transport::registry::{self, Conn};

/// Every tag of the repository `r` names.
pub async fn list_tags(conn: &Conn) -> Result<Vec<String>> {
    let r = &conn.reference;
    let mut tags: Vec<String> = vec![];
    let mut last: Option<String> = None;
    loop {
        let page = registry::with_retries(r, "list tags", conn.retries, || {
            conn.client
                .list_tags(r, &conn.auth, Some(1000), last.as_deref())
        })
        .await
        .map_err(|e| registry::registry_err(r, "list tags", e))?;
        let n = page.tags.len();
        tags.extend(page.tags);
        // A short page is the last one; a registry that ignores `n` sends everything at once.
        if n < 1000 || tags.last() == last.as_ref() {
            break;
        }
        last = tags.last().cloned();
    }
    tags.dedup();
    Ok(tags)
}

fn http(conn: &Conn) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder().tls_danger_accept_invalid_certs(!conn.reach.verify);
    for pem in &conn.reach.ca_pems {
        let c = reqwest::Certificate::from_pem(pem)
            .map_err(|e| Error::Other(format!("CA certificate: {e}")))?;
        b = b.add_root_certificate(c);
    }
    b.build()
        .map_err(|e| Error::Other(format!("HTTP client: {e}")))
}

/// `key="value"` from a `WWW-Authenticate: Bearer …` challenge.
fn challenge_param(h: &str, key: &str) -> Option<String> {
    let start = h.find(&format!("{key}=\""))? + key.len() + 2;
    let len = h[start..].find('"')?;
    Some(h[start..start + len].to_string())
}

/// A bearer token for `scope` from the realm the registry named.
async fn token(
    http: &reqwest::Client,
    challenge: &str,
    scope: &str,
    creds: Option<&(String, String)>,
) -> Option<String> {
    let realm = challenge_param(challenge, "realm")?;
    let mut req = http.get(&realm).query(&[("scope", scope)]);
    if let Some(s) = challenge_param(challenge, "service") {
        req = req.query(&[("service", s)]);
    }
    if let Some((u, p)) = creds {
        req = req.basic_auth(u, Some(p));
    }
    let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .map(String::from)
}

/// DELETE the manifest `digest` of `conn`'s repository.
pub async fn delete_manifest(ctx: &Context, conn: &Conn, digest: &str) -> Result<()> {
    let r = &conn.reference;
    let scheme = if conn.reach.plain_http {
        "http"
    } else {
        "https"
    };
    let url = format!(
        "{scheme}://{}/v2/{}/manifests/{digest}",
        registry_host(r),
        r.repository()
    );
    let http = http(conn)?;
    let creds = crate::auth::credentials_for(ctx, r.registry(), r.repository())?;
    let fail = |reason: String| Error::Registry {
        reference: r.whole(),
        step: "delete",
        reason,
    };
    let send = |headers: HeaderMap| {
        let http = http.clone();
        let url = url.clone();
        async move { http.delete(&url).headers(headers).send().await }
    };
    let mut headers = HeaderMap::new();
    if let Some((u, p)) = &creds {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        if let Ok(v) = format!("Basic {b}").parse() {
            headers.insert(AUTHORIZATION, v);
        }
    }
    let mut res = send(headers.clone())
        .await
        .map_err(|e| fail(registry::error_chain(&e)))?;
    if res.status() == reqwest::StatusCode::UNAUTHORIZED {
        let challenge = res
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if challenge.to_ascii_lowercase().starts_with("bearer") {
            let scope = format!("repository:{}:delete", r.repository());
            if let Some(t) = token(&http, &challenge, &scope, creds.as_ref()).await {
                if let Ok(v) = format!("Bearer {t}").parse() {
                    headers.insert(AUTHORIZATION, v);
                }
                res = send(headers)
                    .await
                    .map_err(|e| fail(registry::error_chain(&e)))?;
            }
        }
    }
    match res.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(Error::Auth {
            registry: r.registry().to_string(),
            reason: format!("delete: access denied to {}", r.repository()),
        }),
        404 => Err(fail(format!("manifest {digest} unknown"))),
        405 => Err(fail(
            "the registry does not allow deletes (docker-registry: REGISTRY_STORAGE_DELETE_ENABLED=true)"
                .into(),
        )),
        code => {
            let body = res.text().await.unwrap_or_default();
            Err(fail(format!(
                "HTTP {code}: {}",
                body.split_whitespace().collect::<Vec<_>>().join(" ")
            )))
        }
    }
}

/// The host to send requests to (Docker Hub's API lives on another name than its images).
fn registry_host(r: &Reference) -> &str {
    r.resolve_registry()
}

/// Connect for a delete (push rights are what oci-client can ask for; the DELETE asks for its
/// own token).
pub async fn connect_for_delete(ctx: &Context, r: &Reference) -> Result<Conn> {
    registry::connect(ctx, r, RegistryOperation::Pull).await
}
