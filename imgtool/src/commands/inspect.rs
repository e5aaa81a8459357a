//! `imgtool inspect IMAGE`: manifest, config, a layer table (digest, diffID, chainID, size) and
//! history; `--format json` prints it all as one JSON object. `docker://REF` looks at a
//! registry's image without pulling it (`inspect_remote.rs`, chosen in main.rs); `--raw` and `--config` print
//! the manifest or the config as stored.
use crate::context::Context;
use crate::error::Result;
use crate::image;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Image name, ID or ID prefix
    pub image: String,
    /// Output format: text or json
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Print the manifest (or index) exactly as stored
    #[arg(long, conflicts_with = "config")]
    pub raw: bool,
    /// Print the image config
    #[arg(long)]
    pub config: bool,
    /// docker:// only: do not list the repository's tags
    #[arg(short, long)]
    pub no_tags: bool,
}

/// chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => crate::verify::sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// An image of the store (a `docker://` one goes to `inspect_remote`; main.rs dispatches).
pub fn run(ctx: &Context, args: InspectArgs) -> Result<()> {
    let img = image::find(ctx, &args.image)?;
    if args.raw || args.config {
        let raw = if args.raw {
            &img.manifest_raw
        } else {
            &img.config_raw
        };
        outln!("{}", String::from_utf8_lossy(raw));
        return Ok(());
    }
    let layers = img.layers()?;
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let config: serde_json::Value = serde_json::from_slice(&img.config_raw).unwrap_or_default();
    let manifest: serde_json::Value = serde_json::from_slice(&img.manifest_raw).unwrap_or_default();
    let repo_digests: Vec<String> = img
        .entries
        .iter()
        .filter_map(|e| {
            let n = crate::store::entry_name(e)?;
            let d = crate::store::entry_annotation(e, crate::store::ANNOTATION_REPO_DIGEST)?;
            Some(format!("{}@{d}", crate::reference::split_name(n).0))
        })
        .collect();
    if args.format == "json" {
        let v = serde_json::json!({
            "Id": img.id,
            "Digest": img.manifest_digest,
            "RepoTags": img.names(),
            "RepoDigests": repo_digests,
            "Created": config.get("created"),
            "Architecture": config.get("architecture"),
            "Os": config.get("os"),
            "Variant": config.get("variant"),
            "Config": config.get("config"),
            "Layers": layers.iter().zip(&chains).map(|(l, c)| serde_json::json!({
                "Digest": l.descriptor.digest().to_string(),
                "MediaType": l.descriptor.media_type().to_string(),
                "DiffID": l.diff_id,
                "ChainID": c,
                "Size": l.descriptor.size(),
            })).collect::<Vec<_>>(),
            "History": config.get("history"),
            "Manifest": manifest,
            "ImageConfig": config,
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    outln!("ID:            {}", img.id);
    outln!("Manifest:      {}", img.manifest_digest);
    outln!("Names:         {}", img.names().join(", "));
    if !repo_digests.is_empty() {
        outln!("Repo digests:  {}", repo_digests.join(", "));
    }
    let s = |k: &str| {
        config
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    outln!("Created:       {}", s("created"));
    let variant = s("variant");
    outln!(
        "Platform:      {}/{}{}",
        s("os"),
        s("architecture"),
        if variant.is_empty() {
            String::new()
        } else {
            format!("/{variant}")
        }
    );
    if let Some(c) = config.get("config") {
        for (key, label) in [
            ("Entrypoint", "Entrypoint"),
            ("Cmd", "Cmd"),
            ("Env", "Env"),
            ("WorkingDir", "WorkingDir"),
            ("User", "User"),
        ] {
            if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
                outln!("{:<15}{}", format!("{label}:"), v);
            }
        }
    }
    outln!();
    let mut table = vec![vec![
        "LAYER".to_string(),
        "DIGEST".into(),
        "DIFF ID".into(),
        "CHAIN ID".into(),
        "SIZE".into(),
    ]];
    for (i, (l, c)) in layers.iter().zip(&chains).enumerate() {
        table.push(vec![
            i.to_string(),
            l.descriptor.digest().to_string(),
            l.diff_id.clone(),
            c.clone(),
            crate::commands::images::human_size(l.descriptor.size()),
        ]);
    }
    crate::commands::images::print_table(&table);
    if let Some(h) = config.get("history").and_then(|h| h.as_array()) {
        outln!();
        outln!("History:");
        for e in h {
            let created = e.get("created").and_then(|v| v.as_str()).unwrap_or("");
            let by = e.get("created_by").and_then(|v| v.as_str()).unwrap_or("");
            let empty = e
                .get("empty_layer")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            outln!(
                "  {created}  {by}{}",
                if empty { "  (empty layer)" } else { "" }
            );
        }
    }
    Ok(())
}
