//! The README's table of Compose keys is the converter's own table ([`KEYS`]): this test
//! renders it and compares. `UPDATE_README=1` writes it into the README instead.

use orkestrator_core::compose::{Disposition, KEYS};

const START: &str =
    "<!-- compose-keys:start (generated from compose::KEYS by tests/compose_readme.rs) -->";
const END: &str = "<!-- compose-keys:end -->";

fn render() -> String {
    let mut out = String::from("| key | what becomes of it |\n|---|---|\n");
    for (pattern, d) in KEYS {
        let what = match d {
            Disposition::Mapped => "mapped".to_owned(),
            Disposition::Data => "mapped (its entries are yours)".to_owned(),
            Disposition::Warned(why) => format!("warned: {why}"),
            Disposition::Refused(why) => format!("**refused**: {why}"),
        };
        out.push_str(&format!("| `{pattern}` | {} |\n", what.replace('|', "\\|")));
    }
    out.push_str("| `x-...` (any other extension key) | ignored, as the specification says |\n");
    out
}

#[test]
fn the_readme_lists_every_compose_key_as_the_converter_does() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("README.md lacks the markers {START} and {END}");
    };
    let table = render();
    let now = &readme[a + START.len()..b];
    if std::env::var_os("UPDATE_README").is_some() {
        let new = format!("{}{START}\n{table}{}", &readme[..a], &readme[b..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    assert_eq!(
        now.trim(),
        table.trim(),
        "README.md's Compose key table is stale: run UPDATE_README=1 cargo test -p orkestrator-core --test compose_readme"
    );
}
