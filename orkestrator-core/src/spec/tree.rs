//! A job file as a tree of values, each with where it was written: what every format reads
//! into before anything is checked, so that every unknown field and every value of the wrong
//! type can be reported at once, each with its line (a leaf of the spec).
//!
//! Reading into the tree fails only on syntax. YAML gives each node's line (and the bytes of a
//! plain scalar, so that a value read as text keeps the text written); TOML gives byte spans,
//! turned into lines by [`Node::locate_spans`]; JSON gives none, so [`Node::locate_json`]
//! walks the text beside the tree to find them.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::units::Scalar;

/// One value of the file and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The 1-based line, where known.
    pub line: Option<usize>,
    /// The bytes of the value in the file, where the format tells them.
    pub span: Option<Range<usize>>,
    /// For a YAML plain scalar read as a number, a boolean or null: the text as written
    /// (`3.10`, `yes`, `0x10`), for the places that read text.
    pub written: Option<String>,
    /// The value.
    pub value: Value,
}

/// A value of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Nothing (`null`, `~`, or a YAML key without a value).
    Null,
    /// A string, a number or a boolean.
    Scalar(Scalar),
    /// A list.
    List(Vec<Node>),
    /// A mapping, its entries in file order (duplicates kept, for the walk to report).
    Map(Vec<(Key, Node)>),
}

/// A mapping's key and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    /// The key as text.
    pub name: String,
    /// The 1-based line, where known.
    pub line: Option<usize>,
    /// The key's bytes in the file, where the format tells them.
    pub span: Option<Range<usize>>,
}

impl Key {
    /// A key is a name: one written as a YAML plain scalar that YAML reads as a boolean or a
    /// number (`n`, `on`, `0x10`) is named by the text written.
    fn keep_written(&mut self, text: &str) {
        let Some(written) = self.span.as_ref().and_then(|s| text.get(s.clone())) else {
            return;
        };
        let written = written.trim();
        let plain = !written.is_empty() && !written.starts_with(['"', '\'', '?']);
        let read_as_other =
            self.name == "true" || self.name == "false" || self.name.parse::<i128>().is_ok();
        if plain && read_as_other && written != self.name {
            self.name = written.to_owned();
        }
    }
}

impl Value {
    /// What the value is, in the words of "found ...".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Scalar(Scalar::Str(_)) => "a string",
            Value::Scalar(Scalar::Int(_) | Scalar::Float(_)) => "a number",
            Value::Scalar(Scalar::Bool(_)) => "a boolean",
            Value::List(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    fn bare(value: Value) -> Node {
        Node {
            line: None,
            span: None,
            written: None,
            value,
        }
    }

    /// Fills every line from its byte span (TOML).
    pub fn locate_spans(&mut self, text: &str) {
        let line = |span: &Option<Range<usize>>| span.as_ref().map(|s| line_of(text, s.start));
        self.line = self.line.or_else(|| line(&self.span));
        match &mut self.value {
            Value::List(items) => items.iter_mut().for_each(|n| n.locate_spans(text)),
            Value::Map(entries) => {
                for (k, n) in entries {
                    k.line = k.line.or_else(|| line(&k.span));
                    n.locate_spans(text);
                }
            }
            Value::Null | Value::Scalar(_) => {}
        }
    }

    /// Fills every line by walking the JSON `text` this tree was read from beside it.
    pub fn locate_json(&mut self, text: &str) {
        let mut scan = JsonScan {
            text: text.as_bytes(),
            at: 0,
            line: 1,
        };
        scan.value(self);
    }

    /// Fills the YAML text of plain scalars read as something other than a string.
    pub fn keep_written(&mut self, text: &str) {
        match &mut self.value {
            Value::Null | Value::Scalar(Scalar::Int(_) | Scalar::Float(_) | Scalar::Bool(_)) => {
                self.written = self
                    .span
                    .as_ref()
                    .and_then(|s| text.get(s.clone()))
                    .map(str::to_owned);
            }
            Value::Scalar(Scalar::Str(_)) => {}
            Value::List(items) => items.iter_mut().for_each(|n| n.keep_written(text)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, n)| {
                k.keep_written(text);
                n.keep_written(text);
            }),
        }
    }

    /// The line of every path in the tree (`tasks[0].resources.memory`), keys by their own
    /// line.
    pub fn lines(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        self.collect_lines(String::new(), &mut out);
        out
    }

    fn collect_lines(&self, path: String, out: &mut HashMap<String, usize>) {
        match &self.value {
            Value::List(items) => {
                for (i, n) in items.iter().enumerate() {
                    n.collect_lines(format!("{path}[{i}]"), out);
                }
            }
            Value::Map(entries) => {
                for (k, n) in entries {
                    let here = super::problems::join(&path, &k.name);
                    if let Some(l) = k.line.or(n.line) {
                        out.entry(here.clone()).or_insert(l);
                    }
                    n.collect_lines(here, out);
                }
            }
            Value::Null | Value::Scalar(_) => {}
        }
        if let Some(l) = self.line {
            out.entry(path).or_insert(l);
        }
    }
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// How one format tells where a value is.
pub(crate) trait Locate {
    /// Reads one node at the deserializer's position.
    fn node<'de, D: Deserializer<'de>>(d: D) -> Result<Node, D::Error>;
}

/// A format that tells nothing: JSON (located afterwards) and values read back.
#[derive(Debug)]
pub(crate) struct Plain;

/// YAML, through serde-saphyr's spans.
#[derive(Debug)]
pub(crate) struct Yaml;

/// TOML, through toml's spans.
#[derive(Debug)]
pub(crate) struct Toml;

impl Locate for Plain {
    fn node<'de, D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        Ok(Node::bare(Bare::<Plain>::deserialize(d)?.0))
    }
}

impl Locate for Yaml {
    fn node<'de, D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let s = serde_saphyr::Spanned::<Bare<Yaml>>::deserialize(d)?;
        // The line where the value is used (an alias's own), the bytes where it is written (an
        // alias's anchor's), so that the text kept is the value's, not `*name`.
        let at = s.referenced;
        let span = s.defined.span();
        Ok(Node {
            line: (at.line() > 0).then_some(at.line() as usize),
            span: span
                .byte_offset()
                .zip(span.byte_len())
                .map(|(o, l)| o as usize..(o + l) as usize),
            written: None,
            value: s.value.0,
        })
    }
}

impl Locate for Toml {
    fn node<'de, D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let s = toml::Spanned::<Bare<Toml>>::deserialize(d)?;
        let span = s.span();
        Ok(Node {
            line: None,
            span: Some(span),
            written: None,
            value: s.into_inner().0,
        })
    }
}

/// A node read in format `L`: what the parser is asked to read.
#[derive(Debug)]
pub(crate) struct At<L>(pub Node, PhantomData<L>);

impl<'de, L: Locate> Deserialize<'de> for At<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        L::node(d).map(|n| At(n, PhantomData))
    }
}

/// A value without its place, whose children are read in format `L`.
struct Bare<L>(Value, PhantomData<L>);

impl<'de, L: Locate> Deserialize<'de> for Bare<L> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor::<L>(PhantomData))
            .map(|v| Bare(v, PhantomData))
    }
}

struct ValueVisitor<L>(PhantomData<L>);

impl<'de, L: Locate> Visitor<'de> for ValueVisitor<L> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Bare::<L>::deserialize(d).map(|b| b.0)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v.into())))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v.into())))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v)))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Scalar(
            i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int),
        ))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Str(v.to_owned())))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(At(n, _)) = seq.next_element::<At<L>>()? {
            items.push(n);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(At(k, _)) = map.next_key::<At<L>>()? {
            let name = match k.value {
                Value::Scalar(Scalar::Str(s)) => s,
                Value::Scalar(Scalar::Int(i)) => i.to_string(),
                Value::Scalar(Scalar::Bool(b)) => b.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "a key is {}; keys are names",
                        other.kind()
                    )));
                }
            };
            let At(v, _) = map.next_value::<At<L>>()?;
            let key = Key {
                name,
                line: k.line,
                span: k.span,
            };
            entries.push((key, v));
        }
        Ok(Value::Map(entries))
    }
}

/// A walk over JSON text already known to be valid, beside the tree read from it.
struct JsonScan<'t> {
    text: &'t [u8],
    at: usize,
    line: usize,
}

impl JsonScan<'_> {
    fn space(&mut self) {
        while let Some(&b) = self.text.get(self.at) {
            match b {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' | b':' | b',' => {}
                _ => return,
            }
            self.at += 1;
        }
    }

    /// Skips a string, from its opening quote.
    fn string(&mut self) {
        self.at += 1;
        while let Some(&b) = self.text.get(self.at) {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => return,
                _ => {}
            }
        }
    }

    fn value(&mut self, node: &mut Node) {
        self.space();
        node.line = Some(self.line);
        match (&mut node.value, self.text.get(self.at)) {
            (Value::List(items), Some(b'[')) => {
                self.at += 1;
                for n in items {
                    self.value(n);
                }
                self.space();
                self.at += 1;
            }
            (Value::Map(entries), Some(b'{')) => {
                self.at += 1;
                for (k, n) in entries {
                    self.space();
                    k.line = Some(self.line);
                    self.string();
                    self.value(n);
                }
                self.space();
                self.at += 1;
            }
            (_, Some(b'"')) => self.string(),
            _ => {
                while self
                    .text
                    .get(self.at)
                    .is_some_and(|b| !b" \t\r\n,]}".contains(b))
                {
                    self.at += 1;
                }
            }
        }
    }
}
