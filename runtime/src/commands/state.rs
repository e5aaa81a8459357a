use crate::commands::Globals;
use crate::container::Container;
use crate::error::Result;

pub fn run(g: &Globals, id: &str) -> Result<()> {
    let c = Container::load(&g.root, id)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&c.oci_state()).expect("json")
    );
    Ok(())
}
