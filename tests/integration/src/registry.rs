//! Real parts for the pull tests: Debian's `docker-registry` (CNCF distribution 2.8) started on
//! 127.0.0.1 in a temp dir (plain HTTP, TLS with a CA made here by `openssl`, htpasswd basic
//! auth, or token auth against the small token server below, which signs JWTs the registry
//! verifies); a fault-injecting HTTP proxy; and an image builder that writes OCI layouts from
//! `/bin/busybox` with our own layer generator, pushed with `skopeo`.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How the registry authenticates clients.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    /// htpasswd basic auth with one user.
    Basic {
        user: String,
        pass: String,
    },
    /// Token auth: the registry sends clients to our token server, which checks this user.
    Token {
        user: String,
        pass: String,
    },
}

/// A CA and a server certificate for 127.0.0.1/localhost, made with `openssl`.
pub struct TestCa {
    /// Directory holding `ca.crt` only: what `--cert-dir` gets.
    pub cert_dir: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn create(dir: &Path) -> TestCa {
        let cert_dir = dir.join("certs");
        std::fs::create_dir_all(&cert_dir).unwrap();
        let ca_key = dir.join("ca.key");
        let ca_crt = cert_dir.join("ca.crt");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=imgtool test CA",
                ])
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca_crt)
                .args([
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ]),
        );
        let server_key = dir.join("server.key");
        let csr = dir.join("server.csr");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&server_key)
                .arg("-out")
                .arg(&csr),
        );
        let ext = dir.join("server.ext");
        std::fs::write(&ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        let server_crt = dir.join("server.crt");
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca_crt)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-out")
                .arg(&server_crt)
                .arg("-extfile")
                .arg(&ext),
        );
        TestCa {
            cert_dir,
            server_crt,
            server_key,
        }
    }
}

/// A running `docker-registry`, stopped and removed on drop.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub auth: Auth,
    pub ca: Option<TestCa>,
    pub token_server: Option<TokenServer>,
    pub dir: tempfile::TempDir,
}

impl TestRegistry {
    pub fn plain() -> TestRegistry {
        TestRegistry::start(false, Auth::None)
    }

    pub fn start(tls: bool, auth: Auth) -> TestRegistry {
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "docker-registry missing: apt-get install docker-registry"
        );
        let dir = tempfile::Builder::new()
            .prefix("imgtool-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let ca = tls.then(|| TestCa::create(dir.path()));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some(ca) = &ca {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.server_crt.display(),
                ca.server_key.display()
            ));
        }
        let mut token_server = None;
        match &auth {
            Auth::None => {}
            Auth::Basic { user, pass } => {
                let hash = bcrypt::hash(pass, 5).unwrap();
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: imgtool-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            Auth::Token { user, pass } => {
                let ts = TokenServer::start(dir.path(), user, pass);
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    ts.addr,
                    TokenServer::SERVICE,
                    TokenServer::ISSUER,
                    ts.cert.display()
                ));
                token_server = Some(ts);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("registry.log")).unwrap(),
            ))
            .spawn()
            .expect("start docker-registry");
        let mut reg = TestRegistry {
            child,
            addr,
            auth,
            ca,
            token_server,
            dir,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited ({st}): {log}");
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {}", self.addr);
    }

    /// skopeo flags for pushing to this registry.
    pub fn skopeo_dest_flags(&self) -> Vec<String> {
        let mut v = vec![];
        match &self.ca {
            Some(ca) => v.push(format!("--dest-cert-dir={}", ca.cert_dir.display())),
            None => v.push("--dest-tls-verify=false".into()),
        }
        match &self.auth {
            Auth::None => {}
            Auth::Basic { user, pass } | Auth::Token { user, pass } => {
                v.push(format!("--dest-creds={user}:{pass}"))
            }
        }
        v
    }

    /// Push `tag` of the layout at `layout` to `repo:dest_tag`; returns the pushed manifest digest.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, dest_tag: &str) -> String {
        self.push_with(
            layout,
            tag,
            repo,
            dest_tag,
            &["--all", "--preserve-digests"],
        )
    }

    /// Push converting to a Docker schema 2 manifest (skopeo cannot read schema 2 manifests
    /// from an OCI layout, so the conversion is skopeo's: config and gzip layers stay as they
    /// are, only the manifest changes). Returns the pushed manifest digest.
    pub fn push_schema2(&self, layout: &Path, tag: &str, repo: &str, dest_tag: &str) -> String {
        self.push_with(layout, tag, repo, dest_tag, &["--format", "v2s2"])
    }

    fn push_with(
        &self,
        layout: &Path,
        tag: &str,
        repo: &str,
        dest_tag: &str,
        extra: &[&str],
    ) -> String {
        let digestfile = self.dir.path().join(format!("digest-{}", unique()));
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q"])
            .args(extra)
            .args(self.skopeo_dest_flags())
            .arg("--digestfile")
            .arg(&digestfile)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{dest_tag}", self.addr));
        run_ok(&mut cmd);
        std::fs::read_to_string(&digestfile)
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// An HTTP request head: method, target, headers with lower-cased names.
type RequestHead = (String, String, Vec<(String, String)>);

/// Read an HTTP/1.1 request head.
fn read_request(stream: &mut TcpStream) -> Option<RequestHead> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Some((method, target, headers))
}

fn query_params(target: &str) -> Vec<(String, String)> {
    let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The registry's token auth counterpart: checks Basic credentials and issues RS256 JWTs
/// (signed with `openssl dgst`, certificate chain in `x5c`) granting what the scope asks to
/// the right user, and nothing to anyone else.
pub struct TokenServer {
    pub addr: String,
    pub cert: PathBuf,
    /// Scopes asked for, with the account that asked (`-` when anonymous).
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    pub const SERVICE: &'static str = "imgtool-test-registry";
    pub const ISSUER: &'static str = "imgtool-test-issuer";

    fn start(dir: &Path, user: &str, pass: &str) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=imgtool test token signer",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(vec![]));
        let (stop2, req2) = (stop.clone(), requests.clone());
        let expected = format!("{user}:{pass}");
        thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        token_request(&mut s, &key, &x5c, &expected, &req2);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            addr,
            cert,
            requests,
            stop,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn token_request(
    s: &mut TcpStream,
    key: &Path,
    x5c: &str,
    expected: &str,
    log: &Mutex<Vec<String>>,
) {
    let Some((_m, target, headers)) = read_request(s) else {
        return;
    };
    let params = query_params(&target);
    let account = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    log.lock().unwrap().push(format!(
        "{} {}",
        account
            .as_deref()
            .map(|a| a.split(':').next().unwrap_or(""))
            .unwrap_or("-"),
        scopes.join(" ")
    ));
    if let Some(a) = &account {
        if a != expected {
            let body =
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#;
            let _ = write!(s, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            return;
        }
    }
    let mut access = vec![];
    if account.is_some() {
        for scope in &scopes {
            let parts: Vec<&str> = scope.split(':').collect();
            if parts.len() == 3 {
                access.push(serde_json::json!({
                    "type": parts[0], "name": parts[1],
                    "actions": parts[2].split(',').collect::<Vec<_>>(),
                }));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TokenServer::ISSUER,
        "sub": account.as_deref().map(|a| a.split(':').next().unwrap_or("")).unwrap_or(""),
        "aud": TokenServer::SERVICE,
        "exp": now + 600, "nbf": now - 60, "iat": now,
        "jti": format!("{now}-{}", unique()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let sig = child.wait_with_output().unwrap().stdout;
    let jwt = format!("{signing_input}.{}", b64url(&sig));
    let body =
        serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 600}).to_string();
    let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}

/// What the proxy does to responses.
#[derive(Clone, Debug)]
pub enum Fault {
    None,
    /// Answer the next `n` blob GETs with 500.
    Error500(usize),
    /// Send half of the next `n` layer-sized blob responses, then cut the connection.
    CutMidBlob(usize),
    /// Serve the blob whose digest hex is given with one byte flipped (same length).
    CorruptBlob(String),
    /// Send blob bodies at most this many bytes per second.
    Slow(usize),
    /// Serve the blob whose digest hex is given with 1 MiB of extra bytes after it.
    Oversize(String),
    /// Send half of the next `n` layer-sized blob responses, then keep the connection open
    /// without sending anything more (a registry stalled mid-blob).
    StallMidBlob(usize),
}

/// A one-request-per-connection HTTP proxy in front of a registry that injects `Fault`s.
pub struct FaultProxy {
    pub addr: String,
    pub fault: Arc<Mutex<Fault>>,
    /// `METHOD PATH [range]` of every request seen.
    pub log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let fault = Arc::new(Mutex::new(fault));
        let log = Arc::new(Mutex::new(vec![]));
        let (stop2, fault2, log2) = (stop.clone(), fault.clone(), log.clone());
        let upstream = upstream.to_string();
        thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (f, l, u) = (fault2.clone(), log2.clone(), upstream.clone());
                        thread::spawn(move || proxy_one(s, &u, &f, &l));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            addr,
            fault,
            log,
            stop,
        }
    }

    pub fn set(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn with_connection_close(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    fault: &Mutex<Fault>,
    log: &Mutex<Vec<String>>,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((method, target, headers)) = read_request(&mut client) else {
        return;
    };
    let range = headers
        .iter()
        .find(|(k, _)| k == "range")
        .map(|(_, v)| v.clone());
    log.lock().unwrap().push(format!(
        "{method} {target} {}",
        range.clone().unwrap_or_default()
    ));
    let mut req = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        if k != "connection" && k != "keep-alive" {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    let is_blob_get = method == "GET" && target.contains("/blobs/sha256:");
    if is_blob_get {
        let mut f = fault.lock().unwrap();
        if let Fault::Error500(n) = &mut *f {
            if *n > 0 {
                *n -= 1;
                let _ = client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
        }
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    if up.write_all(req.as_bytes()).is_err() {
        return;
    }
    let mut resp = vec![];
    let _ = up.read_to_end(&mut resp);
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        let _ = client.write_all(&resp);
        return;
    };
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut body = resp[split + 4..].to_vec();
    let head = with_connection_close(&head);
    let current = fault.lock().unwrap().clone();
    match current {
        Fault::CutMidBlob(n) if is_blob_get && n > 0 && body.len() > 4096 => {
            *fault.lock().unwrap() = Fault::CutMidBlob(n - 1);
            let _ = client.write_all(head.as_bytes());
            let _ = client.write_all(&body[..body.len() / 2]);
            let _ = client.flush();
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fault::StallMidBlob(n) if is_blob_get && n > 0 && body.len() > 4096 => {
            *fault.lock().unwrap() = Fault::StallMidBlob(n - 1);
            let _ = client.write_all(head.as_bytes());
            let _ = client.write_all(&body[..body.len() / 2]);
            let _ = client.flush();
            // Hold the connection open, silent, until the client gives up on it.
            let _ = client.set_read_timeout(Some(Duration::from_secs(300)));
            let _ = client.read(&mut [0u8; 1]);
            return;
        }
        Fault::CorruptBlob(hex) if is_blob_get && target.contains(&hex) && !body.is_empty() => {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        Fault::Oversize(hex) if is_blob_get && target.contains(&hex) => {
            body.extend(std::iter::repeat_n(0u8, 1 << 20));
            let head: String = head
                .split("\r\n")
                .map(|l| {
                    if l.to_ascii_lowercase().starts_with("content-length:") {
                        format!("Content-Length: {}", body.len())
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\r\n");
            let _ = client.write_all(head.as_bytes());
            let _ = client.write_all(&body);
            return;
        }
        Fault::Slow(bps) if is_blob_get => {
            let _ = client.write_all(head.as_bytes());
            let chunk = (bps / 10).max(1);
            for c in body.chunks(chunk) {
                if client.write_all(c).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            return;
        }
        _ => {}
    }
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(&body);
}

/// Layer compression of generated images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// Manifest flavour of generated images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flavor {
    Oci,
    Docker,
}

/// A layer to generate: files (path → content) and whether to include `/bin/busybox`.
#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub files: BTreeMap<String, Vec<u8>>,
    pub busybox: bool,
    pub comp: Comp,
}

impl LayerSpec {
    pub fn busybox(comp: Comp) -> LayerSpec {
        LayerSpec {
            files: BTreeMap::new(),
            busybox: true,
            comp,
        }
    }

    pub fn files(comp: Comp, files: &[(&str, &[u8])]) -> LayerSpec {
        LayerSpec {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_vec()))
                .collect(),
            busybox: false,
            comp,
        }
    }
}

/// What was generated for one image manifest.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub media_type: String,
    pub config_digest: String,
    pub diff_ids: Vec<String>,
    pub layer_digests: Vec<String>,
}

fn tar_layer(spec: &LayerSpec) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    if spec.busybox {
        let bb = std::fs::read(crate::BUSYBOX).expect("busybox-static");
        add("bin/busybox", &bb, 0o755);
    }
    for (p, c) in &spec.files {
        add(p, c, 0o644);
    }
    if spec.busybox {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    }
    b.into_inner().unwrap()
}

fn compress(data: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

fn layer_media_type(flavor: Flavor, comp: Comp) -> &'static str {
    match (flavor, comp) {
        (Flavor::Oci, Comp::None) => "application/vnd.oci.image.layer.v1.tar",
        (Flavor::Oci, Comp::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (Flavor::Oci, Comp::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (Flavor::Docker, Comp::None) => "application/vnd.docker.image.rootfs.diff.tar",
        (Flavor::Docker, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
    }
}

/// An OCI image layout directory being filled with generated images.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn create(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            dir.join("index.json"),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        )
        .unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn put(&self, data: &[u8]) -> String {
        let d = digest_of(data);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    }

    /// Add a `ref.name` entry to index.json.
    pub fn tag(&self, tag: &str, media_type: &str, digest: &str, size: u64) {
        let p = self.dir.join("index.json");
        let mut idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let m = idx["manifests"].as_array_mut().unwrap();
        m.retain(|e| e["annotations"]["org.opencontainers.image.ref.name"] != tag);
        m.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        std::fs::write(&p, serde_json::to_vec(&idx).unwrap()).unwrap();
    }

    /// Generate an image manifest (not tagged). `marker` goes into the config's Labels so
    /// images with equal layers still differ.
    pub fn image(
        &self,
        flavor: Flavor,
        arch: &str,
        variant: Option<&str>,
        layers: &[LayerSpec],
        marker: &str,
    ) -> BuiltImage {
        let mut diff_ids = vec![];
        let mut descs = vec![];
        let mut layer_digests = vec![];
        for l in layers {
            let tar = tar_layer(l);
            diff_ids.push(digest_of(&tar));
            let blob = compress(&tar, l.comp);
            let d = self.put(&blob);
            layer_digests.push(d.clone());
            descs.push(serde_json::json!({
                "mediaType": layer_media_type(flavor, l.comp), "digest": d, "size": blob.len(),
            }));
        }
        let mut config = serde_json::json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"marker": marker}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-02T03:04:05Z", "created_by": format!("imgtool test generator ({marker})")}],
        });
        if let Some(v) = variant {
            config["variant"] = serde_json::json!(v);
        }
        let config_raw = serde_json::to_vec(&config).unwrap();
        let config_digest = self.put(&config_raw);
        let (mt, cmt) = match flavor {
            Flavor::Oci => (
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.config.v1+json",
            ),
            Flavor::Docker => (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
            ),
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": cmt, "digest": config_digest, "size": config_raw.len()},
            "layers": descs,
        });
        let raw = serde_json::to_vec(&manifest).unwrap();
        let manifest_digest = self.put(&raw);
        BuiltImage {
            manifest_digest,
            manifest_size: raw.len() as u64,
            media_type: mt.to_string(),
            config_digest,
            diff_ids,
            layer_digests,
        }
    }

    /// Generate a single-image and tag it.
    pub fn tagged_image(
        &self,
        tag: &str,
        flavor: Flavor,
        layers: &[LayerSpec],
        marker: &str,
    ) -> BuiltImage {
        let img = self.image(flavor, host_arch(), None, layers, marker);
        self.tag(
            tag,
            &img.media_type,
            &img.manifest_digest,
            img.manifest_size,
        );
        img
    }

    /// An index over `images` (each with its os/arch/variant), tagged.
    pub fn tagged_index(
        &self,
        tag: &str,
        flavor: Flavor,
        images: &[(&BuiltImage, &str, Option<&str>)],
    ) -> String {
        let mt = match flavor {
            Flavor::Oci => "application/vnd.oci.image.index.v1+json",
            Flavor::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        };
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|(img, arch, variant)| {
                let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": img.media_type, "digest": img.manifest_digest,
                    "size": img.manifest_size, "platform": platform,
                })
            })
            .collect();
        let raw = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt, "manifests": manifests,
        }))
        .unwrap();
        let d = self.put(&raw);
        self.tag(tag, mt, &d, raw.len() as u64);
        d
    }
}

/// The host architecture in OCI spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
