//! How one service's keys combine with another's: a later file's over an earlier one's (`-f a
//! -f b`), and a service's over the service it `extends`. The rules are Compose's: mappings
//! merge key by key, lists of mounts and ports merge by where they land, lists of names join,
//! and everything else is replaced.

use serde_json::{Map, Value};

use super::yaml::scalar_text;

/// The keys whose values are mappings (or lists of `KEY=VALUE`) merged key by key.
const MAPPINGS: &[&str] = &[
    "environment",
    "labels",
    "ulimits",
    "sysctls",
    "depends_on",
    "storage_opt",
    "extra_hosts",
    "networks",
    "annotations",
];

/// The keys whose lists join, each item once.
const UNIONS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "expose",
    "external_links",
    "volumes_from",
    "device_cgroup_rules",
    "profiles",
    "dns",
    "dns_search",
    "dns_opt",
    "env_file",
    "tmpfs",
    "links",
    "security_opt",
    "group_add",
];

/// The keys whose mappings merge deeply.
const DEEP: &[&str] = &["deploy", "logging", "blkio_config", "build", "healthcheck"];

/// Combines service `base` with `over`, `over` winning.
pub(crate) fn service(base: &Map<String, Value>, over: &Map<String, Value>) -> Map<String, Value> {
    let mut out = base.clone();
    for (k, v) in over {
        let merged = match (k.as_str(), out.get(k)) {
            (_, None) => v.clone(),
            (key, Some(b)) if MAPPINGS.contains(&key) => {
                let mut m = as_mapping(b);
                for (mk, mv) in as_mapping(v) {
                    m.insert(mk, mv);
                }
                Value::Object(m)
            }
            (key, Some(b)) if UNIONS.contains(&key) => union(b, v),
            ("build", Some(b)) => deep(&build_map(b), &build_map(v)),
            ("healthcheck", Some(_)) if v.get("disable") == Some(&Value::Bool(true)) => v.clone(),
            (key, Some(b)) if DEEP.contains(&key) => deep(b, v),
            ("volumes", Some(b)) => keyed(b, v, mount_target),
            ("devices", Some(b)) => keyed(b, v, scalar_text),
            ("ports", Some(b)) => keyed(b, v, |p| Some(p.to_string())),
            ("secrets" | "configs", Some(b)) => keyed(b, v, file_target),
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    out
}

/// A mapping-or-list value (`environment: [A=1]` or `{A: 1}`; `depends_on: [db]`;
/// `networks: [front]`) as a mapping. A list item without `=` maps to null; `depends_on` items
/// to `{condition: service_started}`, as Compose reads them.
pub(crate) fn as_mapping(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(scalar_text)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
                None => (s, Value::Null),
            })
            .collect(),
        _ => Map::new(),
    }
}

fn union(a: &Value, b: &Value) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for v in as_list(a).into_iter().chain(as_list(b)) {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Value::Array(out)
}

/// A list, or a single value as a list of one.
pub(crate) fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn deep(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            let mut out = am.clone();
            for (k, bv) in bm {
                let merged = match out.get(k) {
                    Some(av) => deep(av, bv),
                    None => bv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

/// `build: ./dir` as `{context: ./dir}`.
pub(crate) fn build_map(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let mut m = Map::new();
            m.insert("context".into(), Value::String(s.clone()));
            Value::Object(m)
        }
        other => other.clone(),
    }
}

/// Items of `base` and `over` by key, an item of `over` replacing the one of `base` with the
/// same key, in `base`'s order then `over`'s new ones.
fn keyed(base: &Value, over: &Value, key: impl Fn(&Value) -> Option<String>) -> Value {
    let mut out: Vec<Value> = as_list(base);
    for item in as_list(over) {
        let k = key(&item);
        match out.iter().position(|b| k.is_some() && key(b) == k) {
            Some(i) => out[i] = item,
            None => out.push(item),
        }
    }
    Value::Array(out)
}

/// Where a mount lands in the container: the target of the long syntax, or the part after
/// the source of the short one (`data:/var/lib/db:ro` lands at `/var/lib/db`).
pub(crate) fn mount_target(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(if parts.len() >= 2 { parts[1] } else { parts[0] }.to_owned())
        }
        Value::Object(m) => m.get("target").and_then(scalar_text),
        _ => None,
    }
}

fn file_target(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m
            .get("target")
            .or_else(|| m.get("source"))
            .and_then(scalar_text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn mappings_merge_lists_join_and_scalars_are_replaced() {
        let base = obj(json!({
            "image": "a:1", "environment": ["A=1", "B=2"], "cap_drop": ["X"],
            "volumes": ["d:/data", "./c:/etc/c"], "ports": ["80:80"],
            "deploy": {"resources": {"limits": {"cpus": "1"}}}
        }));
        let over = obj(json!({
            "image": "a:2", "environment": {"B": "3"}, "cap_drop": ["Y", "X"],
            "volumes": ["e:/data"], "ports": ["81:81"],
            "deploy": {"resources": {"limits": {"memory": "1g"}}}
        }));
        let m = service(&base, &over);
        assert_eq!(m["image"], "a:2");
        assert_eq!(m["environment"], json!({"A": "1", "B": "3"}));
        assert_eq!(m["cap_drop"], json!(["X", "Y"]));
        assert_eq!(m["volumes"], json!(["e:/data", "./c:/etc/c"]));
        assert_eq!(m["ports"], json!(["80:80", "81:81"]));
        assert_eq!(
            m["deploy"],
            json!({"resources": {"limits": {"cpus": "1", "memory": "1g"}}})
        );
    }

    #[test]
    fn a_disabled_health_check_replaces_the_base() {
        let base = obj(json!({"healthcheck": {"test": ["CMD", "true"], "interval": "1s"}}));
        let over = obj(json!({"healthcheck": {"disable": true}}));
        assert_eq!(
            service(&base, &over)["healthcheck"],
            json!({"disable": true})
        );
    }

    #[test]
    fn build_strings_merge_with_build_maps() {
        let base = obj(json!({"build": "./api"}));
        let over = obj(json!({"build": {"target": "prod"}}));
        assert_eq!(
            service(&base, &over)["build"],
            json!({"context": "./api", "target": "prod"})
        );
    }
}
