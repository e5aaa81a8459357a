//! containers-registries.conf(5), version 2, as podman and skopeo read it: which registry a
//! name really goes to (`[[registry]]` `prefix` → `location`), which registries are `insecure`
//! (TLS without verification, plain HTTP when they do not speak TLS) or `blocked`, and the
//! `[[registry.mirror]]`s tried before the location. Short names keep Docker's `docker.io/library`
//! normalisation: `unqualified-search-registries` and `[aliases]` are parsed (so a file that
//! has them is accepted) but only used with `--short-name-aliases` (see `expand_short`).
//!
//! Files, as containers/image: `--registries-conf FILE` or `$CONTAINERS_REGISTRIES_CONF` alone;
//! otherwise `$HOME/.config/containers/registries.conf` when it exists, else
//! `/etc/containers/registries.conf`, then the `*.conf` of `registries.conf.d/` beside it in
//! name order, a later `[[registry]]` with the same prefix replacing an earlier one.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::context::Context;
use crate::error::{Error, Result};

/// The registries.conf in force for this process, read once (every registry operation of one
/// command sees the same settings, and commands that never reach a registry never read it).
pub fn for_context(ctx: &Context) -> Result<std::sync::Arc<RegistriesConf>> {
    static CONF: std::sync::OnceLock<std::result::Result<std::sync::Arc<RegistriesConf>, String>> =
        std::sync::OnceLock::new();
    CONF.get_or_init(|| {
        RegistriesConf::load(ctx.registry.registries_conf.as_deref())
            .map(std::sync::Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(Error::Other)
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    unqualified_search_registries: Vec<String>,
    #[serde(default)]
    registry: Vec<RegistryEntry>,
    #[serde(default)]
    aliases: std::collections::BTreeMap<String, String>,
    // Accepted so that real files parse; imgtool has no use for them.
    #[serde(default, rename = "short-name-mode")]
    _short_name_mode: Option<String>,
    #[serde(default, rename = "credential-helpers")]
    _credential_helpers: Option<Vec<String>>,
    // Version 1 tables: refused below with a message naming them.
    #[serde(default)]
    registries: Option<toml::Value>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegistryEntry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<MirrorEntry>,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    pull_from_mirror: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MirrorEntry {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: Option<String>,
}

/// One `[[registry]]`, normalised: `prefix` defaults to `location`.
#[derive(Debug, Clone)]
pub struct Registry {
    pub prefix: String,
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    mirrors: Vec<MirrorEntry>,
    mirror_by_digest_only: bool,
    pull_from_mirror: Option<String>,
    /// The file it came from, for errors.
    pub file: PathBuf,
}

/// Where a name can be fetched from, in the order to try: mirrors first, the location last.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `host[:port]/repo…`: the name with the matched prefix rewritten.
    pub name: String,
    pub insecure: bool,
    pub mirror: bool,
}

/// Every registries.conf setting that applies, merged.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    registries: Vec<Registry>,
    pub search: Vec<String>,
    aliases: std::collections::BTreeMap<String, String>,
}

fn parse_err(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let start = e.span().map(|s| s.start.min(text.len()));
    // serde reports an unknown key with the span of its whole table: the key's own line is
    // what the reader needs.
    let key = msg
        .strip_prefix("unknown field `")
        .and_then(|k| k.split('`').next());
    let key_at = key.zip(start).and_then(|(k, from)| {
        let mut off = from;
        for l in text[from..].split_inclusive('\n') {
            let t = l.trim_start();
            if t.strip_prefix(k)
                .is_some_and(|r| r.trim_start().starts_with('='))
            {
                return Some(off);
            }
            off += l.len();
        }
        None
    });
    let line = key_at
        .or(start)
        .map(|at| text[..at].matches('\n').count() + 1);
    Error::Parse {
        what: match line {
            Some(l) => format!("{} line {l}", path.display()),
            None => path.display().to_string(),
        },
        reason: msg,
    }
}

fn read_file(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
    let f: File = toml::from_str(&text).map_err(|e| parse_err(path, &text, &e))?;
    if f.registries.is_some() {
        return Err(Error::Parse {
            what: path.display().to_string(),
            reason:
                "[registries.*] is the version 1 format; imgtool reads version 2 ([[registry]])"
                    .into(),
        });
    }
    Ok(f)
}

/// `host[:port]` of a `host[:port]/path` name.
fn host_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// Whether `prefix` (a name prefix or `*.domain`) covers `name`, and how long the match is.
fn match_len(prefix: &str, name: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = host_of(name);
        let hostname = host.split(':').next().unwrap_or(host);
        return hostname
            .strip_suffix(domain)
            .filter(|rest| rest.ends_with('.') && rest.len() > 1)
            .map(|_| prefix.len());
    }
    let rest = name.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/') || rest.starts_with(':') || rest.starts_with('@'))
        .then_some(prefix.len())
}

impl RegistriesConf {
    /// Read the files that apply (see the module docs); `explicit` is `--registries-conf`.
    pub fn load(explicit: Option<&Path>) -> Result<RegistriesConf> {
        let env = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|v| !v.is_empty());
        let mut conf = RegistriesConf::default();
        if let Some(p) = explicit.map(Path::to_path_buf).or(env.map(PathBuf::from)) {
            conf.merge(&p, read_file(&p)?);
            return Ok(conf);
        }
        let user = std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".config/containers/registries.conf"));
        let main = match user.filter(|p| p.exists()) {
            Some(p) => p,
            None => PathBuf::from("/etc/containers/registries.conf"),
        };
        if main.exists() {
            conf.merge(&main, read_file(&main)?);
        }
        let mut drop_ins = vec![];
        for dir in [
            PathBuf::from("/etc/containers/registries.conf.d"),
            main.with_extension("conf.d"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                drop_ins.extend(
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "conf")),
                );
            }
        }
        drop_ins.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        drop_ins.dedup();
        for p in drop_ins {
            conf.merge(&p, read_file(&p)?);
        }
        Ok(conf)
    }

    /// Parse one file's text (tests and `load`).
    #[cfg(test)]
    fn from_text(path: &str, text: &str) -> Result<RegistriesConf> {
        let p = Path::new(path);
        let f: File = toml::from_str(text).map_err(|e| parse_err(p, text, &e))?;
        let mut conf = RegistriesConf::default();
        conf.merge(p, f);
        Ok(conf)
    }

    fn merge(&mut self, path: &Path, f: File) {
        if !f.unqualified_search_registries.is_empty() {
            self.search = f.unqualified_search_registries;
        }
        self.aliases.extend(f.aliases);
        for r in f.registry {
            let prefix = if r.prefix.is_empty() {
                r.location.clone()
            } else {
                r.prefix.clone()
            };
            let location = if r.location.is_empty() && !prefix.starts_with("*.") {
                prefix.clone()
            } else {
                r.location.clone()
            };
            self.registries.retain(|e| e.prefix != prefix);
            self.registries.push(Registry {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r.mirror,
                mirror_by_digest_only: r.mirror_by_digest_only,
                pull_from_mirror: r.pull_from_mirror,
                file: path.to_path_buf(),
            });
        }
    }

    /// The `[[registry]]` whose prefix covers `name` (`host/repo[:tag|@digest]`) most closely.
    pub fn find(&self, name: &str) -> Option<&Registry> {
        self.registries
            .iter()
            .filter_map(|r| match_len(&r.prefix, name).map(|l| (l, r)))
            .max_by_key(|(l, _)| *l)
            .map(|(_, r)| r)
    }

    /// The places to fetch `repo` (`host/path`, no tag) from, mirrors first. `by_digest` says
    /// whether the reference is pinned by digest (mirrors may be restricted to those). A blocked
    /// registry is an error naming its entry.
    pub fn pull_endpoints(&self, repo: &str, by_digest: bool) -> Result<Vec<Endpoint>> {
        let Some(r) = self.find(repo) else {
            return Ok(vec![Endpoint {
                name: repo.to_string(),
                insecure: false,
                mirror: false,
            }]);
        };
        check_blocked(r, repo)?;
        let rewrite = |loc: &str| {
            if r.prefix.starts_with("*.") || loc.is_empty() {
                repo.to_string()
            } else {
                format!("{loc}{}", &repo[r.prefix.len()..])
            }
        };
        let mut out = vec![];
        for m in &r.mirrors {
            let mode = m
                .pull_from_mirror
                .as_deref()
                .or(r.pull_from_mirror.as_deref())
                .unwrap_or(if r.mirror_by_digest_only {
                    "digest-only"
                } else {
                    "all"
                });
            let usable = match mode {
                "digest-only" => by_digest,
                "tag-only" => !by_digest,
                _ => true,
            };
            if usable {
                out.push(Endpoint {
                    name: rewrite(&m.location),
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        out.push(Endpoint {
            name: rewrite(&r.location),
            insecure: r.insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// Where a push of `repo` goes: the location only (mirrors are for pulling, as podman).
    pub fn push_endpoint(&self, repo: &str) -> Result<Endpoint> {
        let all = self.pull_endpoints(repo, false)?;
        Ok(all.into_iter().last().unwrap_or(Endpoint {
            name: repo.to_string(),
            insecure: false,
            mirror: false,
        }))
    }

    /// Whether a registry host is marked insecure, as a location or as a mirror.
    pub fn insecure(&self, host: &str) -> bool {
        self.registries.iter().any(|r| {
            (r.insecure && host_of(&r.location) == host)
                || r.mirrors
                    .iter()
                    .any(|m| m.insecure && host_of(&m.location) == host)
        })
    }

    /// `[aliases]` then the first `unqualified-search-registries` entry for a short name
    /// (one without a registry part): used only with `--short-name-aliases`, since by default a
    /// short name means Docker Hub as for Docker.
    pub fn alias(&self, short: &str) -> Option<String> {
        let (name, suffix) = match short.find([':', '@']) {
            Some(i) => (&short[..i], &short[i..]),
            None => (short, ""),
        };
        if let Some(a) = self.aliases.get(name) {
            return Some(format!("{a}{suffix}"));
        }
        self.search.first().map(|r| format!("{r}/{short}"))
    }
}

/// The settings short names are resolved with, once `--short-name-aliases` enabled them.
static SHORT_NAMES: std::sync::OnceLock<RegistriesConf> = std::sync::OnceLock::new();

/// `--short-name-aliases`: from now on a name without a registry part is looked up in
/// `[aliases]`, then put under the first `unqualified-search-registries` entry, before
/// Docker's `docker.io/library` normalisation would apply.
pub fn enable_short_names(ctx: &Context) -> Result<()> {
    let conf = for_context(ctx)?;
    let _ = SHORT_NAMES.set((*conf).clone());
    Ok(())
}

/// The full name a short name stands for, when short names are enabled and it is one.
pub fn expand_short(input: &str) -> Option<String> {
    let conf = SHORT_NAMES.get()?;
    let first = input.split('/').next().unwrap_or(input);
    let has_registry =
        input.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        return None;
    }
    conf.alias(input)
}

fn check_blocked(r: &Registry, repo: &str) -> Result<()> {
    if r.blocked {
        return Err(Error::Source {
            source_name: repo.to_string(),
            reason: format!(
                "blocked by [[registry]] prefix = {:?} in {}",
                r.prefix,
                r.file.display()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["quay.io"]
[aliases]
"fed" = "registry.fedoraproject.org/fedora"

[[registry]]
prefix = "example.com/foo"
location = "internal:5000/bar"
insecure = true
[[registry.mirror]]
location = "mirror-a:5000/m"
[[registry.mirror]]
location = "mirror-b:5000/m"
pull-from-mirror = "digest-only"

[[registry]]
location = "bad.example.com"
blocked = true

[[registry]]
prefix = "*.wild.test"
insecure = true
"#;

    fn conf() -> RegistriesConf {
        RegistriesConf::from_text("/test/registries.conf", CONF).unwrap()
    }

    #[test]
    fn a_prefix_is_rewritten_to_its_location_with_mirrors_first() {
        let e = conf().pull_endpoints("example.com/foo/app", false).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["mirror-a:5000/m/app", "internal:5000/bar/app"]);
        assert!(e[1].insecure && !e[0].insecure);
        let by_digest = conf().pull_endpoints("example.com/foo/app", true).unwrap();
        assert_eq!(by_digest.len(), 3);
    }

    #[test]
    fn a_prefix_matches_whole_path_components_only() {
        assert!(conf().find("example.com/foobar/x").is_none());
        assert!(conf().find("example.com/foo").is_some());
    }

    #[test]
    fn a_blocked_registry_is_an_error_naming_its_entry() {
        let e = conf()
            .pull_endpoints("bad.example.com/x", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("blocked") && e.contains("bad.example.com"),
            "{e}"
        );
        assert!(e.contains("/test/registries.conf"), "{e}");
    }

    #[test]
    fn a_wildcard_prefix_covers_subdomains_only() {
        let c = conf();
        assert!(c.find("a.wild.test/x").is_some());
        assert!(c.find("wild.test/x").is_none());
        assert!(c.insecure("internal:5000"));
        assert!(!c.insecure("mirror-a:5000"));
    }

    #[test]
    fn a_name_no_entry_covers_goes_where_it_says() {
        let e = conf().pull_endpoints("docker.io/library/x", false).unwrap();
        assert_eq!(e[0].name, "docker.io/library/x");
    }

    #[test]
    fn aliases_win_over_search_registries_for_short_names() {
        let c = conf();
        assert_eq!(
            c.alias("fed:39").as_deref(),
            Some("registry.fedoraproject.org/fedora:39")
        );
        assert_eq!(c.alias("app").as_deref(), Some("quay.io/app"));
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error_naming_the_line() {
        let e = RegistriesConf::from_text("/x.conf", "[[registry]]\nlocation = \"a\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x.conf line 3") && e.contains("bogus"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
