//! A registry with oci-client: reaching it (TLS, plain HTTP for loopback or `--tls-verify=false`,
//! cert dirs), credentials, a connection (`Conn`), retries with backoff and stall detection, one-line
//! errors, and fetching a manifest checked against its digest. Pulling an image is
//! `registry_pull.rs`; the signatures, `signatures.rs` and `sigstore_attachments.rs`.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::verify::sha256_digest;

/// How many layers download (or upload) at once.
pub const CONCURRENT_LAYERS: usize = 4;

const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// `localhost`, `127.0.0.1`, `[::1]` (with or without a port): the only registries plain HTTP
/// is allowed for.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// PEM CA certificates (`*.crt`) from a directory, as containers' certs.d has them.
fn load_ca_dir(dir: &Path, out: &mut Vec<Certificate>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read certificate directory", dir)(e)),
    };
    let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.extension().and_then(|e| e.to_str()) == Some("crt") {
            let data = std::fs::read(&p).map_err(Error::io("read CA certificate", &p))?;
            out.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
    }
    Ok(())
}

/// How to reach one registry, as decided from the flags, registries.conf and a probe.
#[derive(Clone, Debug)]
pub struct Reach {
    /// Plain HTTP (`--plain-http`, or an unverified registry that does not speak TLS).
    pub plain_http: bool,
    /// Whether the certificate is checked.
    pub verify: bool,
    /// Extra trusted CAs (PEM): `--cert-dir`, certs.d.
    pub ca_pems: Vec<Vec<u8>>,
}

pub async fn reach(ctx: &Context, registry: &str, insecure: bool) -> Result<Reach> {
    let opts = &ctx.registry;
    let verify = opts.tls_verify && !insecure;
    let plain_http = if opts.plain_http {
        if verify && !is_loopback_registry(registry) {
            return Err(Error::InvalidArgument {
                arg: "--plain-http",
                reason: format!(
                    "plain HTTP is only allowed for localhost/127.0.0.1 registries, not {registry} (or with --tls-verify=false)"
                ),
            });
        }
        true
    } else {
        // As containers/image: an unverified registry that does not speak TLS at all is
        // reached over plain HTTP.
        !verify && !speaks_tls(registry, opts.timeout).await
    };
    let mut certs = Vec::new();
    if let Some(d) = &opts.cert_dir {
        if !d.is_dir() {
            return Err(Error::InvalidArgument {
                arg: "--cert-dir",
                reason: format!("{} is not a directory", d.display()),
            });
        }
        load_ca_dir(d, &mut certs)?;
    }
    for base in ["/etc/containers/certs.d", "/etc/docker/certs.d"] {
        load_ca_dir(&Path::new(base).join(registry), &mut certs)?;
    }
    Ok(Reach {
        plain_http,
        verify,
        ca_pems: certs.into_iter().map(|c| c.data).collect(),
    })
}

/// A client configured for `registry`: protocol, TLS trust, and our own platform choice.
/// `insecure` (from registries.conf) counts as `--tls-verify=false` for this registry;
/// `monolithic` chooses one PUT per blob for pushes (chunked PATCHes otherwise).
pub async fn client_with(
    ctx: &Context,
    registry: &str,
    insecure: bool,
    monolithic: bool,
) -> Result<Client> {
    let reach = reach(ctx, registry, insecure).await?;
    Ok(client_reaching(ctx, registry, &reach, monolithic))
}

fn client_reaching(ctx: &Context, registry: &str, reach: &Reach, monolithic: bool) -> Client {
    let opts = &ctx.registry;
    let protocol = if reach.plain_http {
        ClientProtocol::HttpsExcept(vec![registry.to_string()])
    } else {
        ClientProtocol::Https
    };
    let config = ClientConfig {
        protocol,
        accept_invalid_certificates: !reach.verify,
        extra_root_certificates: reach
            .ca_pems
            .iter()
            .map(|data| Certificate {
                encoding: CertificateEncoding::Pem,
                data: data.clone(),
            })
            .collect(),
        max_concurrent_download: CONCURRENT_LAYERS,
        max_concurrent_upload: CONCURRENT_LAYERS,
        use_monolithic_push: monolithic,
        // Idle timeouts, not whole-request ones: a big layer may take long, but a registry
        // that accepts the connection and then sends nothing would otherwise hold us forever.
        connect_timeout: Some(opts.timeout),
        read_timeout: Some(opts.timeout),
        ..Default::default()
    };
    STALL_SECS.store(opts.timeout.as_secs(), Ordering::Relaxed);
    RETRIES.store(opts.retries.into(), Ordering::Relaxed);
    Client::new(config)
}

/// Whether `registry` speaks TLS, asked the cheap way: a plain `GET /v2/` over TCP. A plain
/// HTTP registry answers it with an HTTP status line at once; a TLS server either answers with
/// a TLS alert, closes, or (Go, nginx) sends a 400 saying an HTTP request reached an HTTPS
/// port. (A TLS handshake against a plain HTTP server, as containers/image tries first, waits
/// tens of milliseconds for the server to give up on it.) A registry that cannot be reached
/// counts as TLS, so the real request reports why.
async fn speaks_tls(registry: &str, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = if registry.contains(':') && !registry.ends_with(']') {
        registry.to_string()
    } else {
        format!("{registry}:443")
    };
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(&host).await.ok()?;
        let req = format!("GET /v2/ HTTP/1.0\r\nHost: {registry}\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        // HTTP/1.0: the server closes after its answer, so read to the end (1 KiB is enough
        // for the status line and the start of a body that may say "HTTPS").
        let mut buf = vec![0u8; 1024];
        let mut n = 0;
        while n < buf.len() {
            match s.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        Some(!text.starts_with("http/") || text.contains("https"))
    };
    tokio::time::timeout(timeout, probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(true)
}

/// A registry reached for one image: the client, the credentials, and the reference as this
/// endpoint names it (a mirror's name when registries.conf rewrote it).
pub struct Conn {
    pub client: Client,
    pub auth: RegistryAuth,
    pub reference: Reference,
    /// `--retry-times` for this side.
    pub retries: u32,
    /// How the client reaches the registry, for requests oci-client does not make.
    pub reach: Reach,
}

/// Rebuild `r` with the registry and repository of `name` (`host/repo`).
fn rebased(r: &Reference, name: &str) -> Reference {
    let (registry, repository) = name.split_once('/').unwrap_or((name, ""));
    let (registry, repository) = (registry.to_string(), repository.to_string());
    match (r.tag(), r.digest()) {
        (Some(t), Some(d)) => {
            Reference::with_tag_and_digest(registry, repository, t.into(), d.into())
        }
        (None, Some(d)) => Reference::with_digest(registry, repository, d.into()),
        (Some(t), None) => Reference::with_tag(registry, repository, t.into()),
        (None, None) => Reference::with_tag(registry, repository, "latest".into()),
    }
}

/// Connect to one endpoint for `op`: authenticate up front when there are credentials, so a
/// token endpoint refusing them is reported as such.
async fn connect_to(
    ctx: &Context,
    r: Reference,
    insecure: bool,
    op: RegistryOperation,
) -> Result<Conn> {
    let reach = reach(ctx, r.registry(), insecure).await?;
    // Pushes go in one PUT per blob; a registry that refuses that gets chunks (see copy/push.rs).
    let client = client_reaching(ctx, r.registry(), &reach, op == RegistryOperation::Push);
    let auth = registry_auth(ctx, &r)?;
    if auth != RegistryAuth::Anonymous || op == RegistryOperation::Push {
        with_retries(&r, "authenticate", ctx.registry.retries, || {
            client.auth(&r, &auth, op)
        })
        .await
        .map_err(|e| registry_err(&r, "authenticate", e))?;
    }
    Ok(Conn {
        client,
        auth,
        reference: r,
        retries: ctx.registry.retries,
        reach,
    })
}

/// Reach the registry `r` is pushed to, deleted from or listed at: registries.conf's location
/// (never a mirror), or an error when it blocks it.
pub async fn connect(ctx: &Context, r: &Reference, op: RegistryOperation) -> Result<Conn> {
    let conf = crate::registries_conf::for_context(ctx)?;
    let ep = conf.push_endpoint(&format!("{}/{}", r.registry(), r.repository()))?;
    let insecure = ep.insecure || conf.insecure(r.registry());
    connect_to(ctx, rebased(r, &ep.name), insecure, op).await
}

/// Reach `r` for reading and fetch its manifest: registries.conf's mirrors in order, then the
/// location; the first endpoint that serves the manifest is used for the whole image.
pub async fn connect_for_pull(ctx: &Context, r: &Reference) -> Result<(Conn, Vec<u8>, String)> {
    let conf = crate::registries_conf::for_context(ctx)?;
    let endpoints = conf.pull_endpoints(
        &format!("{}/{}", r.registry(), r.repository()),
        r.digest().is_some(),
    )?;
    let last = endpoints.len().saturating_sub(1);
    for (i, ep) in endpoints.into_iter().enumerate() {
        let er = rebased(r, &ep.name);
        let insecure = ep.insecure || conf.insecure(er.registry());
        let attempt = async {
            let conn = connect_to(ctx, er.clone(), insecure, RegistryOperation::Pull).await?;
            let (raw, digest) = fetch_manifest(
                &conn.client,
                &conn.auth,
                &conn.reference,
                ctx.registry.retries,
            )
            .await?;
            Ok::<_, Error>((conn, raw, digest))
        };
        match attempt.await {
            Ok(v) => return Ok(v),
            Err(e) if i < last => {
                errln!("imgtool: warning: mirror {}: {e}; trying the next", ep.name);
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Other(format!(
        "{}: no registry to pull from",
        r.whole()
    )))
}

/// The `--timeout` in force, for the error that reports a stall (errors are made far from the
/// options, and one process has one `--timeout`).
static STALL_SECS: AtomicU64 = AtomicU64::new(30);

/// Whether a failure is the registry sending nothing for `--timeout`.
pub(crate) fn stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_timeout())
        {
            return true;
        }
        cur = c.source();
    }
    error_chain(e).contains("timed out")
}

pub(crate) fn stall_reason(registry: &str) -> String {
    format!(
        "{registry} sent nothing for {} s (stalled; --timeout SECS to wait longer)",
        STALL_SECS.load(Ordering::Relaxed)
    )
}

/// Credentials for the reference, as oci-client wants them.
pub fn registry_auth(ctx: &Context, r: &Reference) -> Result<RegistryAuth> {
    Ok(
        match crate::auth::credentials_for(ctx, r.registry(), r.repository())? {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        },
    )
}

/// Whether an error is worth retrying: network trouble, 5xx, 429.
pub fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(re) if re.is_connect() => !tls_refused(re),
        OciDistributionError::RequestError(re) => {
            re.is_timeout() || re.is_request() || re.is_body() || re.is_decode()
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::IoError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| format!("{:?}", e.code).contains("Toomanyrequests")),
        _ => false,
    }
}

/// A TLS handshake that failed on its merits (an HTTP server, a certificate we do not trust)
/// fails the same way every time: retrying only delays the error.
fn tls_refused(e: &dyn std::error::Error) -> bool {
    let chain = error_chain(e).to_ascii_lowercase();
    [
        "certificate",
        "corrupt message",
        "invalidcontenttype",
        "tls",
    ]
    .iter()
    .any(|w| chain.contains(w))
}

pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(6))
}

/// Turn an oci-client error into ours, naming the step and reference.
pub fn registry_err(r: &Reference, step: &'static str, e: OciDistributionError) -> Error {
    match e {
        OciDistributionError::AuthenticationFailure(reason) => Error::Auth {
            registry: r.registry().to_string(),
            reason: one_line(&reason),
        },
        OciDistributionError::UnauthorizedError { .. } => Error::Auth {
            registry: r.registry().to_string(),
            reason: format!(
                "{step}: unauthorized: wrong or missing credentials for {}",
                r.repository()
            ),
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(format!("{:?}", x.code).as_str(), "Unauthorized" | "Denied")) =>
        {
            Error::Auth {
                registry: r.registry().to_string(),
                reason: format!("{step}: access denied to {}", r.repository()),
            }
        }
        OciDistributionError::RegistryError { envelope, .. } => Error::Registry {
            reference: r.whole(),
            step,
            reason: envelope
                .errors
                .iter()
                .map(|x| format!("{:?}: {}", x.code, x.message))
                .collect::<Vec<_>>()
                .join("; "),
        },
        OciDistributionError::ImageManifestNotFoundError(m) => Error::Registry {
            reference: r.whole(),
            step,
            reason: format!("manifest unknown: {}", one_line(&m)),
        },
        other if stalled(&other) => Error::Registry {
            reference: r.whole(),
            step,
            reason: stall_reason(r.registry()),
        },
        other => {
            let mut reason = one_line(&error_chain(&other));
            if reason.contains("InvalidContentType") {
                reason.push_str(
                    " (the registry may speak plain HTTP: see --tls-verify=false or --plain-http)",
                );
            }
            Error::Registry {
                reference: r.whole(),
                step,
                reason,
            }
        }
    }
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A stall that will be retried is said at once: with the default `--timeout` and retries the
/// whole wait is minutes, which must not pass in silence.
pub(crate) fn warn_stall(
    r: &Reference,
    step: &str,
    e: &(dyn std::error::Error + 'static),
    attempt: u32,
) {
    if stalled(e) {
        errln!(
            "imgtool: warning: {}: {step}: {}; retrying ({} of {})",
            r.whole(),
            stall_reason(r.registry()),
            attempt + 1,
            RETRIES.load(Ordering::Relaxed)
        );
    }
}

/// The `--retry-times` in force, for `warn_stall` (as `STALL_SECS`).
static RETRIES: AtomicU64 = AtomicU64::new(3);

/// Run `f` until it succeeds, fails permanently, or the retries are used up.
pub async fn with_retries<T, F, Fut>(
    r: &Reference,
    step: &str,
    retries: u32,
    mut f: F,
) -> std::result::Result<T, OciDistributionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, OciDistributionError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < retries && transient(&e) => {
                tracing::debug!("transient registry error, retrying: {e}");
                warn_stall(r, step, &e, attempt);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The async runtime one registry command runs its requests on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONCURRENT_LAYERS)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("start async runtime: {e}")))
}

/// GET a manifest and check its digest (against the reference's digest when it has one).
pub async fn fetch_manifest(
    client: &Client,
    auth: &RegistryAuth,
    r: &Reference,
    retries: u32,
) -> Result<(Vec<u8>, String)> {
    let (raw, header_digest) = with_retries(r, "fetch manifest", retries, || {
        client.pull_manifest_raw(r, auth, ACCEPT)
    })
    .await
    .map_err(|e| match e {
        OciDistributionError::DigestError(de) => Error::DigestMismatch {
            what: "manifest",
            digest: r.digest().unwrap_or("(from registry)").to_string(),
            actual: de.to_string(),
        },
        e => registry_err(r, "fetch manifest", e),
    })?;
    let actual = sha256_digest(&raw);
    let expected = r.digest().map(String::from).unwrap_or(header_digest);
    if expected.starts_with("sha256:") && actual != expected {
        return Err(Error::DigestMismatch {
            what: "manifest",
            digest: expected,
            actual,
        });
    }
    Ok((raw.to_vec(), actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_allowed_only_for_loopback_registries() {
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
        ] {
            assert!(is_loopback_registry(ok), "{ok}");
        }
        for no in [
            "docker.io",
            "localhost.example.com",
            "127.0.0.2",
            "10.0.0.1:5000",
        ] {
            assert!(!is_loopback_registry(no), "{no}");
        }
    }
}
