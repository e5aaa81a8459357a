//! `imgtool images`: one row per name (and one per dangling image), Docker's columns and filters.
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::image;
use crate::reference::{short_id, split_name};
use crate::store::{self, Store};

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Output format: table or json
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Show the registry digest of each name
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate image IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Only print image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: reference=PATTERN (glob; several are OR'ed), dangling=true|false,
    /// before=IMAGE, since=IMAGE
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Instead of listing, check the store as `imgtool fsck` does (without repairing)
    #[arg(long, conflicts_with_all = ["format", "digests", "no_trunc", "quiet", "filters"])]
    pub verify: bool,
}

/// One listed row.
struct Row {
    repository: String,
    tag: String,
    name: Option<String>,
    repo_digest: Option<String>,
    id: String,
    created: Option<chrono::DateTime<chrono::FixedOffset>>,
    size: u64,
}

struct Filters {
    references: Vec<glob::Pattern>,
    dangling: Option<bool>,
    before: Option<chrono::DateTime<chrono::FixedOffset>>,
    since: Option<chrono::DateTime<chrono::FixedOffset>>,
}

fn created_of(img: &image::Image) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    img.config
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
}

fn parse_filters(store: &Arc<Store>, raw: &[String]) -> Result<Filters> {
    let mut f = Filters {
        references: vec![],
        dangling: None,
        before: None,
        since: None,
    };
    for r in raw {
        let bad = |reason: String| Error::InvalidArgument {
            arg: "--filter",
            reason: format!("{r:?}: {reason}"),
        };
        let (k, v) = r
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE".into()))?;
        match k {
            "reference" => f
                .references
                .push(glob::Pattern::new(v).map_err(|e| bad(format!("bad pattern: {e}")))?),
            "dangling" => {
                f.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("dangling takes true or false".into())),
                })
            }
            "before" | "since" => {
                let img = image::find_in(store, v)?;
                let t = created_of(&img)
                    .ok_or_else(|| bad(format!("image {v} has no creation time")))?;
                if k == "before" {
                    f.before = Some(t);
                } else {
                    f.since = Some(t);
                }
            }
            _ => {
                return Err(bad(
                    "unknown filter (reference, dangling, before, since)".into()
                ))
            }
        }
    }
    Ok(f)
}

/// Docker-familiar spelling: `docker.io/library/busybox` → `busybox`, `docker.io/u/a` → `u/a`.
fn familiar(repo: &str) -> &str {
    repo.strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .unwrap_or(repo)
}

fn matches_reference(pattern: &glob::Pattern, row: &Row) -> bool {
    if row.name.is_none() {
        return false;
    }
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let fam = familiar(&row.repository);
    [
        format!("{}:{}", row.repository, row.tag),
        row.repository.clone(),
        format!("{fam}:{}", row.tag),
        fam.to_string(),
    ]
    .iter()
    .any(|c| pattern.matches_with(c, opts))
}

impl Filters {
    fn keep(&self, row: &Row) -> bool {
        if !self.references.is_empty() && !self.references.iter().any(|p| matches_reference(p, row))
        {
            return false;
        }
        if let Some(d) = self.dangling {
            if d != row.name.is_none() {
                return false;
            }
        }
        if let Some(b) = self.before {
            if row.created.is_none_or(|c| c >= b) {
                return false;
            }
        }
        if let Some(s) = self.since {
            if row.created.is_none_or(|c| c <= s) {
                return false;
            }
        }
        true
    }
}

fn collect_rows(store: &Arc<Store>) -> Result<Vec<Row>> {
    let mut rows = vec![];
    let mut seen_manifests = std::collections::HashMap::new();
    for e in store.entries()? {
        let d = e.digest().to_string();
        if !seen_manifests.contains_key(&d) {
            let img = image::load(store, &d)?;
            let size = img.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
                + img.config_raw.len() as u64;
            seen_manifests.insert(d.clone(), (img.id.clone(), created_of(&img), size));
        }
        let (id, created, size) = seen_manifests[&d].clone();
        let name = store::entry_name(&e).map(String::from);
        let (repository, tag) = match &name {
            Some(n) => split_name(n),
            None => ("<none>".into(), "<none>".into()),
        };
        let repo_digest = store::entry_annotation(&e, store::ANNOTATION_REPO_DIGEST)
            .map(String::from)
            .or(Some(d.clone()));
        rows.push(Row {
            repository,
            tag,
            name,
            repo_digest,
            id,
            created,
            size,
        });
    }
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(a.repository.cmp(&b.repository))
    });
    Ok(rows)
}

/// "3 minutes ago" style age.
fn ago(t: Option<chrono::DateTime<chrono::FixedOffset>>) -> String {
    let Some(t) = t else {
        return "N/A".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (n, unit) = match secs {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 30 => (s / 86400, "day"),
        s if s < 86400 * 365 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Human size in decimal units as Docker prints them.
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

pub fn run(ctx: &Context, args: ImagesArgs) -> Result<()> {
    if args.verify {
        return super::fsck::verify(ctx, false);
    }
    let store = Arc::new(Store::open(ctx)?);
    let filters = parse_filters(&store, &args.filters)?;
    let rows: Vec<Row> = collect_rows(&store)?
        .into_iter()
        .filter(|r| filters.keep(r))
        .collect();
    let show_id = |id: &str| -> String {
        if args.no_trunc {
            id.to_string()
        } else {
            short_id(id).to_string()
        }
    };
    if args.quiet {
        let mut seen = BTreeSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                outln!("{}", show_id(&r.id));
            }
        }
        return Ok(());
    }
    if args.format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "Id": r.id,
                    "Repository": r.repository,
                    "Tag": r.tag,
                    "Name": r.name,
                    "Digest": r.repo_digest,
                    "Created": r.created.map(|c| c.to_rfc3339()),
                    "Size": r.size,
                    "Dangling": r.name.is_none(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let mut table: Vec<Vec<String>> = vec![];
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    table.push(header.iter().map(|s| s.to_string()).collect());
    for r in &rows {
        let mut line = vec![r.repository.clone(), r.tag.clone()];
        if args.digests {
            line.push(r.repo_digest.clone().unwrap_or_else(|| "<none>".into()));
        }
        line.extend([show_id(&r.id), ago(r.created), human_size(r.size)]);
        table.push(line);
    }
    print_table(&table);
    Ok(())
}

/// Left-aligned columns separated by three spaces.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        outln!("{}", line.trim_end());
    }
}
