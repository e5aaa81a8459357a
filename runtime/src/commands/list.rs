use crate::commands::Globals;
use crate::container::state;
use crate::container::Container;
use crate::error::Result;

pub fn run(g: &Globals, format: &str, quiet: bool) -> Result<()> {
    let containers: Vec<Container> = state::list_ids(&g.root)
        .iter()
        .filter_map(|id| Container::load(&g.root, id).ok())
        .collect();
    if quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(());
    }
    if format == "json" {
        let v: Vec<serde_json::Value> = containers.iter().map(|c| c.oci_state()).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<12} {:<8} {:<10} {:<40} {:<31} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for c in &containers {
        let s = c.oci_state();
        println!(
            "{:<12} {:<8} {:<10} {:<40} {:<31} {}",
            c.id(),
            s["pid"],
            s["status"].as_str().unwrap_or_default(),
            c.saved.bundle.display(),
            c.saved.created,
            if c.saved.owner.is_empty() {
                "root"
            } else {
                &c.saved.owner
            }
        );
    }
    Ok(())
}
