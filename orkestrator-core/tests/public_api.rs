//! The public API of `orkestrator-core`, as `docs/public-api.txt` lists it.
//!
//! The list is generated from rustdoc's JSON output (`cargo rustdoc -- --output-format json`, on
//! the stable toolchain with `RUSTC_BOOTSTRAP=1`, built with the crate's default features, so the
//! `testing` feature's helpers are not part of it). This test builds it again and fails when the
//! file and the code differ; after a deliberate change of the API, write the file anew with
//!
//! ```sh
//! UPDATE_PUBLIC_API=1 cargo test -p orkestrator-core --test public_api
//! ```
//!
//! and let the diff of `docs/public-api.txt` show the change in review.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[test]
fn public_api_matches_docs_public_api_txt() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listed = root.join("docs/public-api.txt");
    let now = render(&rustdoc_json(&root));

    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::write(&listed, &now).expect("write docs/public-api.txt");
        return;
    }
    let before = std::fs::read_to_string(&listed).unwrap_or_default();
    if before == now {
        return;
    }
    let old: BTreeSet<&str> = before.lines().collect();
    let new: BTreeSet<&str> = now.lines().collect();
    let mut diff = String::new();
    for l in old.difference(&new) {
        diff += &format!("- {l}\n");
    }
    for l in new.difference(&old) {
        diff += &format!("+ {l}\n");
    }
    panic!(
        "the public API of orkestrator-core differs from docs/public-api.txt \
         (- only in the file, + only in the code):\n{diff}\n\
         if the change is deliberate, run: \
         UPDATE_PUBLIC_API=1 cargo test -p orkestrator-core --test public_api"
    );
}

/// Builds the crate's rustdoc JSON in a target directory of its own (the test's own build holds
/// the usual one) and reads it.
fn rustdoc_json(root: &Path) -> Value {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("public-api");
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTDOCFLAGS")
        .args(["rustdoc", "-p", "orkestrator-core", "--lib", "--target-dir"])
        .arg(&target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .output()
        .expect("run cargo rustdoc");
    assert!(
        out.status.success(),
        "cargo rustdoc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = target.join("doc/orkestrator_core.json");
    let text = std::fs::read_to_string(&file).expect("read the rustdoc JSON");
    serde_json::from_str(&text).expect("parse the rustdoc JSON")
}

/// One line per public item, sorted: modules, types with their public fields and variants,
/// functions and methods with their signatures, traits with their items, the traits each type
/// implements (not the blanket or auto ones), constants and aliases.
fn render(doc: &Value) -> String {
    let mut w = Walker {
        doc,
        lines: BTreeSet::new(),
        seen: HashSet::new(),
    };
    let root = doc["root"].to_string();
    w.module(&root, "orkestrator_core");
    let mut s = String::new();
    for (_, l) in &w.lines {
        s += l;
        s.push('\n');
    }
    s
}

struct Walker<'a> {
    doc: &'a Value,
    /// (the item's path, the line): each item sorts beside its type.
    lines: BTreeSet<(String, String)>,
    seen: HashSet<(String, String)>,
}

impl<'a> Walker<'a> {
    fn item(&self, id: &str) -> Option<&'a Value> {
        let doc: &'a Value = self.doc;
        doc["index"].get(id)
    }

    fn add(&mut self, line: String) {
        let from = match line.find(" for orkestrator_core::") {
            Some(i) if line.starts_with("impl") => i + 5,
            _ => line.find("orkestrator_core::").unwrap_or(0),
        };
        self.lines.insert((line[from..].to_string(), line));
    }

    fn module(&mut self, id: &str, path: &str) {
        let Some(m) = self.item(id) else { return };
        let items: Vec<String> = m["inner"]["module"]["items"]
            .as_array()
            .map(|a| a.iter().map(|i| i.to_string()).collect())
            .unwrap_or_default();
        for i in items {
            self.public(&i, path, None);
        }
    }

    /// Lists item `id` under `path`, as `name` when it is re-exported under another name.
    fn public(&mut self, id: &str, path: &str, name: Option<&str>) {
        let Some(item) = self.item(id) else { return };
        if item["visibility"] != "public" {
            return;
        }
        if !self.seen.insert((id.to_string(), path.to_string())) {
            return;
        }
        let Some((kind, inner)) = item["inner"].as_object().and_then(|o| o.iter().next()) else {
            return;
        };
        let name = name.or(item["name"].as_str()).unwrap_or("_");
        let me = format!("{path}::{name}");
        match kind.as_str() {
            "module" => {
                self.add(format!("pub mod {me}"));
                self.module(id, &me);
            }
            "use" => {
                let target = inner["id"].to_string();
                if inner["is_glob"] == true {
                    if self.item(&target).is_some() {
                        self.module(&target, path);
                    }
                } else if self.item(&target).is_some() {
                    self.public(&target, path, inner["name"].as_str());
                } else {
                    let source = inner["source"].as_str().unwrap_or("_");
                    self.add(format!("pub use {me} = {source}"));
                }
            }
            "struct" => {
                let g = generics(&inner["generics"]);
                self.add(format!("pub struct {me}{g}"));
                let fields = &inner["kind"];
                for f in ids(&fields["plain"]["fields"])
                    .into_iter()
                    .chain(tuple_fields(fields))
                {
                    self.field(&f, &me);
                }
                self.impls(&inner["impls"], &me);
            }
            "enum" => {
                let g = generics(&inner["generics"]);
                self.add(format!("pub enum {me}{g}"));
                for v in ids(&inner["variants"]) {
                    self.variant(&v, &me);
                }
                self.impls(&inner["impls"], &me);
            }
            "trait" => {
                let g = generics(&inner["generics"]);
                self.add(format!("pub trait {me}{g}"));
                for i in ids(&inner["items"]) {
                    self.member(&i, &me, true);
                }
            }
            "function" => {
                self.add(format!("pub {}", function(&me, inner)));
            }
            "type_alias" => {
                let g = generics(&inner["generics"]);
                self.add(format!("pub type {me}{g} = {}", ty(&inner["type"])));
            }
            "constant" => {
                self.add(format!("pub const {me}: {}", ty(&inner["type"])));
            }
            "static" => {
                self.add(format!("pub static {me}: {}", ty(&inner["type"])));
            }
            "macro" => {
                self.add(format!("pub macro {me}!"));
            }
            other => {
                self.add(format!("pub {other} {me}"));
            }
        }
    }

    fn field(&mut self, id: &str, owner: &str) {
        let Some(f) = self.item(id) else { return };
        if f["visibility"] != "public" {
            return;
        }
        let name = f["name"].as_str().unwrap_or("_");
        let t = ty(&f["inner"]["struct_field"]);
        self.add(format!("pub {owner}::{name}: {t}"));
    }

    fn variant(&mut self, id: &str, owner: &str) {
        let Some(v) = self.item(id) else { return };
        let name = v["name"].as_str().unwrap_or("_");
        let kind = &v["inner"]["variant"]["kind"];
        let shape = if let Some(fields) = kind["tuple"].as_array() {
            let tys: Vec<String> = fields
                .iter()
                .map(|f| match self.item(&f.to_string()) {
                    Some(f) => ty(&f["inner"]["struct_field"]),
                    None => "_".into(),
                })
                .collect();
            format!("({})", tys.join(", "))
        } else if kind.get("struct").is_some() {
            let names: Vec<String> = ids(&kind["struct"]["fields"])
                .iter()
                .filter_map(|f| self.item(f))
                .map(|f| {
                    let n = f["name"].as_str().unwrap_or("_");
                    format!("{n}: {}", ty(&f["inner"]["struct_field"]))
                })
                .collect();
            format!(" {{ {} }}", names.join(", "))
        } else {
            String::new()
        };
        self.add(format!("pub {owner}::{name}{shape}"));
    }

    /// A trait's or an inherent impl's item.
    fn member(&mut self, id: &str, owner: &str, in_trait: bool) {
        let Some(m) = self.item(id) else { return };
        if !in_trait && m["visibility"] != "public" {
            return;
        }
        let name = m["name"].as_str().unwrap_or("_");
        let me = format!("{owner}::{name}");
        let Some((kind, inner)) = m["inner"].as_object().and_then(|o| o.iter().next()) else {
            return;
        };
        let line = match kind.as_str() {
            "function" => function(&me, inner),
            "assoc_type" => format!("type {me}"),
            "assoc_const" => format!("const {me}: {}", ty(&inner["type"])),
            other => format!("{other} {me}"),
        };
        self.add(format!("pub {line}"));
    }

    fn impls(&mut self, list: &Value, owner: &str) {
        for id in ids(list) {
            let Some(i) = self.item(&id) else { continue };
            let imp = &i["inner"]["impl"];
            if imp["is_synthetic"] == true || !imp["blanket_impl"].is_null() {
                continue;
            }
            if imp["trait"].is_null() {
                for m in ids(&imp["items"]) {
                    self.member(&m, owner, false);
                }
            } else {
                let g = generics(&imp["generics"]);
                let t = self.trait_path(&imp["trait"]);
                if t.ends_with("StructuralPartialEq") {
                    // The compiler's marker for derived `PartialEq`: not a promise of the API.
                    continue;
                }
                self.add(format!("impl{g} {t} for {owner}"));
            }
        }
    }

    /// A trait's full path where rustdoc knows it (derives name it by a private alias).
    fn trait_path(&self, p: &Value) -> String {
        let known = self.doc["paths"]
            .get(p["id"].to_string())
            .and_then(|s| s["path"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("::")
            });
        let name = known.unwrap_or_else(|| p["path"].as_str().unwrap_or("_").to_string());
        format!("{name}{}", args(&p["args"]))
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|i| !i.is_null())
                .map(|i| i.to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn tuple_fields(kind: &Value) -> Vec<String> {
    ids(&kind["tuple"])
}

fn function(me: &str, f: &Value) -> String {
    let h = &f["header"];
    let mut s = String::new();
    if h["is_const"] == true {
        s += "const ";
    }
    if h["is_async"] == true {
        s += "async ";
    }
    if h["is_unsafe"] == true {
        s += "unsafe ";
    }
    let inputs: Vec<String> = f["sig"]["inputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let name = p[0].as_str().unwrap_or("_");
                    let t = ty(&p[1]);
                    match (name, t.as_str()) {
                        ("self", "Self") => "self".into(),
                        ("self", "&Self") => "&self".into(),
                        ("self", "&mut Self") => "&mut self".into(),
                        _ => format!("{name}: {t}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let out = match &f["sig"]["output"] {
        Value::Null => String::new(),
        o => format!(" -> {}", ty(o)),
    };
    format!(
        "{s}fn {me}{}({}){out}",
        generics(&f["generics"]),
        inputs.join(", ")
    )
}

fn generics(g: &Value) -> String {
    let params: Vec<String> = g["params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| {
                    // `impl Trait` arguments appear as synthetic parameters; they show in the
                    // argument itself.
                    p["kind"]["type"]["is_synthetic"] != true
                })
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or("_").to_string();
                    let bounds = bounds(&p["kind"]["type"]["bounds"]);
                    if bounds.is_empty() {
                        name
                    } else {
                        format!("{name}: {bounds}")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if params.is_empty() {
        String::new()
    } else {
        format!("<{}>", params.join(", "))
    }
}

fn bounds(b: &Value) -> String {
    b.as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    if let Some(t) = b.get("trait_bound") {
                        let p = &t["trait"];
                        let m = if t["modifier"] == "maybe" { "?" } else { "" };
                        format!(
                            "{m}{}{}",
                            last(p["path"].as_str().unwrap_or("_")),
                            args(&p["args"])
                        )
                    } else if let Some(l) = b.get("outlives") {
                        l.as_str().unwrap_or("'_").to_string()
                    } else {
                        "_".into()
                    }
                })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .unwrap_or_default()
}

fn last(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

fn args(a: &Value) -> String {
    if let Some(ab) = a.get("angle_bracketed") {
        let mut parts: Vec<String> = ab["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        if let Some(t) = x.get("type") {
                            ty(t)
                        } else if let Some(l) = x.get("lifetime") {
                            l.as_str().unwrap_or("'_").to_string()
                        } else if let Some(c) = x.get("const") {
                            c["expr"].as_str().unwrap_or("_").to_string()
                        } else {
                            "_".into()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(cs) = ab["constraints"].as_array() {
            for c in cs {
                let name = c["name"].as_str().unwrap_or("_");
                let b = &c["binding"];
                if let Some(t) = b.get("equality") {
                    let t = t.get("type").map(ty).unwrap_or_else(|| "_".into());
                    parts.push(format!("{name} = {t}"));
                } else if let Some(bs) = b.get("constraint") {
                    parts.push(format!("{name}: {}", bounds(bs)));
                }
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("<{}>", parts.join(", "))
        }
    } else if let Some(pa) = a.get("parenthesized") {
        let inputs: Vec<String> = pa["inputs"]
            .as_array()
            .map(|a| a.iter().map(ty).collect())
            .unwrap_or_default();
        let out = match &pa["output"] {
            Value::Null => String::new(),
            o => format!(" -> {}", ty(o)),
        };
        format!("({}){out}", inputs.join(", "))
    } else {
        String::new()
    }
}

fn ty(t: &Value) -> String {
    let Some((kind, v)) = t.as_object().and_then(|o| o.iter().next()) else {
        return "_".into();
    };
    match kind.as_str() {
        "resolved_path" => format!(
            "{}{}",
            last(v["path"].as_str().unwrap_or("_")),
            args(&v["args"])
        ),
        "primitive" | "generic" => v.as_str().unwrap_or("_").to_string(),
        "borrowed_ref" => {
            let l = v["lifetime"]
                .as_str()
                .map(|l| format!("{l} "))
                .unwrap_or_default();
            let m = if v["is_mutable"] == true { "mut " } else { "" };
            format!("&{l}{m}{}", ty(&v["type"]))
        }
        "raw_pointer" => {
            let m = if v["is_mutable"] == true {
                "mut"
            } else {
                "const"
            };
            format!("*{m} {}", ty(&v["type"]))
        }
        "tuple" => {
            let parts: Vec<String> = v
                .as_array()
                .map(|a| a.iter().map(ty).collect())
                .unwrap_or_default();
            format!("({})", parts.join(", "))
        }
        "slice" => format!("[{}]", ty(v)),
        "array" => format!("[{}; {}]", ty(&v["type"]), v["len"].as_str().unwrap_or("_")),
        "impl_trait" => format!("impl {}", bounds(v)),
        "dyn_trait" => {
            let traits: Vec<String> = v["traits"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            let p = &p["trait"];
                            format!(
                                "{}{}",
                                last(p["path"].as_str().unwrap_or("_")),
                                args(&p["args"])
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let l = v["lifetime"]
                .as_str()
                .map(|l| format!(" + {l}"))
                .unwrap_or_default();
            format!("dyn {}{l}", traits.join(" + "))
        }
        "qualified_path" => {
            let name = v["name"].as_str().unwrap_or("_");
            let self_ty = ty(&v["self_type"]);
            match v["trait"].as_object() {
                Some(tr) if !tr["path"].as_str().unwrap_or("").is_empty() => {
                    format!(
                        "<{self_ty} as {}>::{name}",
                        last(tr["path"].as_str().unwrap_or("_"))
                    )
                }
                _ => format!("{self_ty}::{name}"),
            }
        }
        "function_pointer" => {
            let inputs: Vec<String> = v["sig"]["inputs"]
                .as_array()
                .map(|a| a.iter().map(|p| ty(&p[1])).collect())
                .unwrap_or_default();
            let out = match &v["sig"]["output"] {
                Value::Null => String::new(),
                o => format!(" -> {}", ty(o)),
            };
            format!("fn({}){out}", inputs.join(", "))
        }
        "infer" => "_".into(),
        other => other.to_string(),
    }
}
