//! A Compose file read into a JSON value: what interpolation, merging and mapping work on.
//!
//! YAML is read through the job reader's tree (serde-saphyr, with anchors and merge keys), so
//! that a plain scalar YAML reads as a float keeps the text written (`3.10` stays `"3.10"`,
//! as an environment value must). Integers and booleans keep their type; floats become the
//! text written, which every place that reads a number parses itself.

use serde_json::{Map, Number, Value};

use crate::spec::tree::{At, Node, Value as TreeValue, Yaml};
use crate::units::Scalar;

/// Where and why a Compose file could not be read as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// The 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Reads a Compose file's YAML text into a JSON value. A duplicate key is an error with its
/// line; keys brought in by a merge key (`<<: *base`) are not duplicates, since the merge is
/// resolved while reading, explicit keys winning.
pub(crate) fn read(text: &str) -> Result<Value, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = serde_saphyr::options! {
        with_snippet: false,
    };
    let parsed: Result<Option<At<Yaml>>, _> = serde_saphyr::from_str_with_options(text, options);
    let node = parsed.map_err(|e| SyntaxError {
        line: e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| l.line() as usize),
        message: first_line(&e.to_string()),
    })?;
    let Some(mut node) = node.map(|at| at.0) else {
        return Err(SyntaxError {
            line: Some(1),
            message: "the file is empty (a Compose file needs `services`)".into(),
        });
    };
    node.keep_written(text);
    to_json(&node)
}

/// The parser's message on one line, without its location (reported apart) or its advice to
/// the programmer.
fn first_line(s: &str) -> String {
    let s = s.lines().next().unwrap_or(s).trim();
    let s = s.split(" at line ").next().unwrap_or(s);
    if let Some(rest) = s.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return format!("the key `{key}` is written twice in one mapping");
    }
    s.to_owned()
}

fn to_json(node: &Node) -> Result<Value, SyntaxError> {
    Ok(match &node.value {
        TreeValue::Null => Value::Null,
        TreeValue::Scalar(Scalar::Str(s)) => Value::String(s.clone()),
        TreeValue::Scalar(Scalar::Bool(b)) => Value::Bool(*b),
        TreeValue::Scalar(Scalar::Int(i)) => match i64::try_from(*i) {
            Ok(i) => Value::Number(Number::from(i)),
            Err(_) => Value::String(i.to_string()),
        },
        TreeValue::Scalar(Scalar::Float(f)) => Value::String(
            node.written
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| f.to_string()),
        ),
        TreeValue::List(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        TreeValue::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                if map.contains_key(&k.name) {
                    return Err(SyntaxError {
                        line: k.line,
                        message: format!("the key `{}` is written twice in one mapping", k.name),
                    });
                }
                map.insert(k.name.clone(), to_json(v)?);
            }
            Value::Object(map)
        }
    })
}

/// A key path as the Compose file reads it: `services.web.volumes[1]`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The path of item `i` of the list at `path`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The text of a scalar: a string as it is, a number or boolean as written; none for lists,
/// mappings and null.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a value is, in the words of "found ...".
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_keep_their_text_and_ints_their_type() {
        let v = read("a: 3.10\nb: 3\nc: true\nd: '1.0'\n").unwrap();
        assert_eq!(v, json!({"a": "3.10", "b": 3, "c": true, "d": "1.0"}));
    }

    #[test]
    fn merge_keys_are_not_duplicates_and_explicit_keys_win() {
        let text = "x-base: &base\n  image: busybox\n  restart: always\nservices:\n  web:\n    <<: *base\n    restart: \"no\"\n";
        let v = read(text).unwrap();
        assert_eq!(
            v["services"]["web"],
            json!({"image": "busybox", "restart": "no"})
        );
    }

    #[test]
    fn a_duplicate_key_is_an_error_with_its_line() {
        let e = read("services:\n  web: {}\n  web: {}\n").unwrap_err();
        assert!(e.message.contains("`web`"), "{e:?}");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn an_empty_file_says_what_it_needs() {
        let e = read("").unwrap_err();
        assert!(e.message.contains("services"), "{e:?}");
    }
}
