//! `imgtool login REGISTRY` checks the credentials against the registry (Basic on `/v2/`, or
//! the token endpoint its Bearer challenge names, as `docker login` does) and writes them to
//! auth.json; `imgtool logout REGISTRY` removes them.
use std::io::BufRead;
use std::time::Duration;

use crate::context::Context;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port]
    pub registry: String,
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port]
    #[arg(required_unless_present = "all")]
    pub registry: Option<String>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
}

/// Registry names as the user types them may carry a scheme or a path; keep host[:port].
fn registry_host(input: &str) -> String {
    let s = input
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_string()
}

fn http_client(ctx: &Context, registry: &str) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(ctx.registry.timeout)
        .read_timeout(ctx.registry.timeout)
        .timeout(Duration::from_secs(60).max(ctx.registry.timeout))
        .tls_danger_accept_invalid_certs(!ctx.registry.tls_verify);
    let mut certs = vec![];
    let mut dirs = vec![];
    if let Some(d) = &ctx.registry.cert_dir {
        dirs.push(d.clone());
    }
    dirs.push(std::path::Path::new("/etc/containers/certs.d").join(registry));
    dirs.push(std::path::Path::new("/etc/docker/certs.d").join(registry));
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("crt") {
                let pem = std::fs::read(&p).map_err(Error::io("read CA certificate", &p))?;
                certs.push(reqwest::Certificate::from_pem(&pem).map_err(|e| {
                    Error::InvalidArgument {
                        arg: "--cert-dir",
                        reason: format!("{}: {e}", p.display()),
                    }
                })?);
            }
        }
    }
    if !certs.is_empty() {
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| Error::Other(format!("build HTTP client: {e}")))
}

/// `key="value"` parameters of a `Bearer ...` challenge.
fn challenge_params(h: &str) -> Vec<(String, String)> {
    let rest = h
        .trim_start_matches("Bearer")
        .trim_start_matches("bearer")
        .trim();
    let mut out = vec![];
    for part in rest.split(',') {
        if let Some((k, v)) = part.trim().split_once('=') {
            out.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
        }
    }
    out
}

async fn check_credentials(ctx: &Context, registry: &str, user: &str, pass: &str) -> Result<()> {
    let scheme = if ctx.registry.plain_http {
        if !crate::transport::registry::is_loopback_registry(registry) {
            return Err(Error::InvalidArgument {
                arg: "--plain-http",
                reason: format!(
                    "plain HTTP is only allowed for localhost/127.0.0.1 registries, not {registry}"
                ),
            });
        }
        "http"
    } else {
        "https"
    };
    let host = if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    };
    let client = http_client(ctx, registry)?;
    let net = |e: reqwest::Error| Error::Registry {
        reference: registry.to_string(),
        step: "login",
        reason: crate::transport::registry::error_chain(&e),
    };
    let url = format!("{scheme}://{host}/v2/");
    let resp = client
        .get(&url)
        .basic_auth(user, Some(pass))
        .send()
        .await
        .map_err(net)?;
    if resp.status().is_success() {
        return Ok(());
    }
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bad_creds = || Error::Auth {
        registry: registry.to_string(),
        reason: "invalid username or password".into(),
    };
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(Error::Registry {
            reference: registry.to_string(),
            step: "login",
            reason: format!("GET {url}: HTTP {}", resp.status()),
        });
    }
    if !challenge.to_ascii_lowercase().starts_with("bearer") {
        return Err(bad_creds());
    }
    let params = challenge_params(&challenge);
    let realm = params
        .iter()
        .find(|(k, _)| k == "realm")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| Error::Registry {
            reference: registry.to_string(),
            step: "login",
            reason: "Bearer challenge without realm".into(),
        })?;
    let mut query = vec![("account".to_string(), user.to_string())];
    if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
        query.push(("service".into(), s.clone()));
    }
    let tok = client
        .get(&realm)
        .query(&query)
        .basic_auth(user, Some(pass))
        .send()
        .await
        .map_err(net)?;
    if tok.status().is_success() {
        Ok(())
    } else if tok.status() == reqwest::StatusCode::UNAUTHORIZED
        || tok.status() == reqwest::StatusCode::FORBIDDEN
    {
        Err(bad_creds())
    } else {
        Err(Error::Registry {
            reference: registry.to_string(),
            step: "login",
            reason: format!("token endpoint {realm}: HTTP {}", tok.status()),
        })
    }
}

pub fn run_login(ctx: &Context, args: LoginArgs) -> Result<()> {
    let registry = registry_host(&args.registry);
    let (user, pass) = match (&ctx.registry.creds, &args.username) {
        (Some((u, p)), None) => (u.clone(), p.clone()),
        (_, Some(u)) => {
            let p = match (&args.password, args.password_stdin) {
                (Some(p), false) => p.clone(),
                (None, true) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .map_err(Error::io("read password from", "stdin"))?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
                (Some(_), true) => {
                    return Err(Error::InvalidArgument {
                        arg: "--password",
                        reason: "give either --password or --password-stdin".into(),
                    })
                }
                (None, false) => {
                    return Err(Error::InvalidArgument {
                        arg: "--password",
                        reason: "a password is needed (--password or --password-stdin)".into(),
                    })
                }
            };
            (u.clone(), p)
        }
        (None, None) => {
            return Err(Error::InvalidArgument {
                arg: "--username",
                reason: "a user name is needed (-u USER or --creds USER:PASS)".into(),
            })
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("start async runtime: {e}")))?;
    rt.block_on(check_credentials(ctx, &registry, &user, &pass))?;
    let path = crate::auth::store_credentials(ctx, &registry, &user, &pass)?;
    errln!("Credentials for {registry} written to {}", path.display());
    outln!("Login Succeeded!");
    Ok(())
}

pub fn run_logout(ctx: &Context, args: LogoutArgs) -> Result<()> {
    if args.all {
        let n = crate::auth::remove_all_credentials(ctx)?;
        outln!("Removed login credentials for {n} registries");
        return Ok(());
    }
    let registry = registry_host(args.registry.as_deref().unwrap_or_default());
    if crate::auth::remove_credentials(ctx, &registry)? {
        outln!("Removed login credentials for {registry}");
        Ok(())
    } else {
        Err(Error::Auth {
            registry,
            reason: "not logged in".into(),
        })
    }
}
