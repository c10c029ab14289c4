//! Variable interpolation in Compose files, as the Compose Specification's "Interpolation" section
//! gives it.
//!
//! The forms:
//!
//! | form              | value                                                                 |
//! |-------------------|-----------------------------------------------------------------------|
//! | `$VAR`, `${VAR}`  | the variable, or the empty string when unset                          |
//! | `${VAR:-default}` | `default` when `VAR` is unset or empty                                |
//! | `${VAR-default}`  | `default` only when `VAR` is unset                                    |
//! | `${VAR:?err}`     | an error naming `VAR` (with `err`) when it is unset or empty          |
//! | `${VAR?err}`      | an error naming `VAR` (with `err`) only when it is unset              |
//! | `${VAR:+alt}`     | `alt` when `VAR` is set and not empty, else the empty string          |
//! | `${VAR+alt}`      | `alt` when `VAR` is set (even empty), else the empty string           |
//! | `$$`              | a literal `$`                                                         |
//!
//! A name is `[A-Za-z_][A-Za-z0-9_]*`. The text after the operator (`default`, `err`, `alt`) is
//! itself interpolated, so defaults nest (`${A:-${B:-x}}`, `${A?$B}`), and it may hold balanced
//! `{`…`}`: `${A:-{a{b}c}}` gives `{a{b}c}` as compose-go counts braces (bash would close at the
//! first `}` and give `{a{bc}}`). It is evaluated only when it is used, so `${A:-${B:?}}` is no
//! error while `A` is set; but its syntax is always checked.
//!
//! Choices, following the specification and compose-go (docker compose's loader):
//!
//! - a `$` that starts neither `$$`, `${` nor a name (`$1`, `$-`, `$ `, a `$` at the end) is kept as
//!   it is, with no error: the specification says such a `$` "will be preserved";
//! - a `${` that does not form one of the forms above is an error (`${`, `${}`, `${1}`, `${A B}`,
//!   `${A:x}`, `${A` with no `}`), as compose-go reports "Invalid template";
//! - an unset variable with no default becomes the empty string with no error (docker compose warns;
//!   the caller may, as this function has no side effects);
//! - `}` outside a `${…}` is an ordinary character.

use std::fmt;

/// Why a string could not be interpolated: bad `${…}` syntax, or a required variable
/// (`${VAR:?err}`, `${VAR?err}`) that is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterpolationError {
    /// A message for people, naming the variable or quoting the bad text, and the fix.
    pub message: String,
}

impl fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InterpolationError {}

/// Interpolates `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`,
/// `${VAR:+alt}`, `${VAR+alt}`, `$VAR` and `$$` (a literal `$`), with nested interpolation inside
/// defaults (`${A:-${B}}`), as the Compose spec gives it. `lookup` returns None for an unset
/// variable (Some("") for set-but-empty).
///
/// See the module documentation for the exact rules (a `$` not starting a variable is kept).
pub(crate) fn interpolate(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    if !s.contains('$') {
        return Ok(s.to_owned());
    }
    let mut parser = Parser {
        s,
        b: s.as_bytes(),
        pos: 0,
    };
    let nodes = parser.sequence(false, 0)?;
    let mut out = String::with_capacity(s.len());
    eval(&nodes, lookup, &mut out)?;
    Ok(out)
}

/// How deeply `${…}` may nest inside defaults before the text is refused (a guard against
/// exhausting the stack on hostile input; real files nest two or three levels).
const MAX_DEPTH: usize = 64;

/// What follows the name in `${NAME<op>…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `:-`
    DefaultIfUnsetOrEmpty,
    /// `-`
    DefaultIfUnset,
    /// `:?`
    RequiredNonEmpty,
    /// `?`
    Required,
    /// `:+`
    AltIfNonEmpty,
    /// `+`
    AltIfSet,
}

/// A piece of a parsed string.
#[derive(Debug)]
enum Node<'a> {
    /// Text copied as it is (`$$` becomes the text `$`).
    Lit(&'a str),
    /// A variable, with its operator and operand when braced with one.
    Var {
        name: &'a str,
        op: Option<(Op, Vec<Node<'a>>)>,
    },
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

impl<'a> Parser<'a> {
    /// Parses text up to the end, or (when `nested`) up to the `}` that closes the enclosing
    /// `${`, which is left unconsumed.
    fn sequence(
        &mut self,
        nested: bool,
        depth: usize,
    ) -> Result<Vec<Node<'a>>, InterpolationError> {
        let mut nodes = Vec::new();
        let mut lit_start = self.pos;
        // Literal `{` inside an operand, to be closed by a literal `}` before the operand ends.
        let mut braces = 0usize;
        while self.pos < self.b.len() {
            match self.b[self.pos] {
                b'$' => match self.b.get(self.pos + 1).copied() {
                    Some(b'$') => {
                        self.flush(&mut nodes, lit_start);
                        nodes.push(Node::Lit("$"));
                        self.pos += 2;
                        lit_start = self.pos;
                    }
                    Some(b'{') => {
                        self.flush(&mut nodes, lit_start);
                        nodes.push(self.braced(depth)?);
                        lit_start = self.pos;
                    }
                    Some(c) if is_name_start(c) => {
                        self.flush(&mut nodes, lit_start);
                        self.pos += 1;
                        let name = self.name();
                        nodes.push(Node::Var { name, op: None });
                        lit_start = self.pos;
                    }
                    // A `$` that starts no variable is kept as it is.
                    _ => self.pos += 1,
                },
                b'{' if nested => {
                    braces += 1;
                    self.pos += 1;
                }
                b'}' if nested => {
                    if braces == 0 {
                        break;
                    }
                    braces -= 1;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        self.flush(&mut nodes, lit_start);
        Ok(nodes)
    }

    fn flush(&self, nodes: &mut Vec<Node<'a>>, lit_start: usize) {
        if lit_start < self.pos {
            nodes.push(Node::Lit(&self.s[lit_start..self.pos]));
        }
    }

    /// Reads a name starting at `pos` (possibly empty).
    fn name(&mut self) -> &'a str {
        let start = self.pos;
        if self.b.get(self.pos).is_some_and(|&c| is_name_start(c)) {
            self.pos += 1;
            while self.b.get(self.pos).is_some_and(|&c| is_name_char(c)) {
                self.pos += 1;
            }
        }
        &self.s[start..self.pos]
    }

    /// Parses `${…}` with `pos` at its `$`; leaves `pos` after its `}`.
    fn braced(&mut self, depth: usize) -> Result<Node<'a>, InterpolationError> {
        let start = self.pos;
        if depth >= MAX_DEPTH {
            return Err(self.invalid(
                start,
                self.b.len(),
                &format!("`${{…}}` is nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.pos += 2;
        let name = self.name();
        let op = match (
            self.b.get(self.pos).copied(),
            self.b.get(self.pos + 1).copied(),
        ) {
            (None, _) | (Some(b':'), None) => return Err(self.unclosed(start)),
            _ if name.is_empty() => {
                return Err(self.invalid(
                    start,
                    self.pos + 1,
                    "`${` must be followed by a variable name (letters, digits and `_`, not \
                     starting with a digit)",
                ));
            }
            (Some(b'}'), _) => {
                self.pos += 1;
                return Ok(Node::Var { name, op: None });
            }
            (Some(b':'), Some(b'-')) => Op::DefaultIfUnsetOrEmpty,
            (Some(b':'), Some(b'?')) => Op::RequiredNonEmpty,
            (Some(b':'), Some(b'+')) => Op::AltIfNonEmpty,
            (Some(b'-'), _) => Op::DefaultIfUnset,
            (Some(b'?'), _) => Op::Required,
            (Some(b'+'), _) => Op::AltIfSet,
            _ => {
                return Err(self.invalid(
                    start,
                    self.pos + 1,
                    &format!(
                        "after the name `{name}` comes `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`"
                    ),
                ));
            }
        };
        self.pos += match op {
            Op::DefaultIfUnsetOrEmpty | Op::RequiredNonEmpty | Op::AltIfNonEmpty => 2,
            Op::DefaultIfUnset | Op::Required | Op::AltIfSet => 1,
        };
        let operand = self.sequence(true, depth + 1)?;
        if self.pos >= self.b.len() {
            return Err(self.unclosed(start));
        }
        self.pos += 1; // the closing `}`
        Ok(Node::Var {
            name,
            op: Some((op, operand)),
        })
    }

    fn unclosed(&self, start: usize) -> InterpolationError {
        self.invalid(start, self.b.len(), "a `${` is not closed")
    }

    /// An error quoting the text from `start` to about `end` (extended to the next `}` when
    /// that is near, so the reader sees the whole `${…}`).
    fn invalid(&self, start: usize, end: usize, why: &str) -> InterpolationError {
        let mut end = end.min(self.b.len());
        if let Some(close) = self.b[end..].iter().position(|&c| c == b'}')
            && close < 40
        {
            end += close + 1;
        }
        while !self.s.is_char_boundary(end) {
            end += 1;
        }
        let mut quoted = &self.s[start..end];
        let mut ellipsis = "";
        if quoted.len() > 80 {
            let mut cut = 80;
            while !quoted.is_char_boundary(cut) {
                cut -= 1;
            }
            quoted = &quoted[..cut];
            ellipsis = "…";
        }
        InterpolationError {
            message: format!(
                "invalid interpolation format for {:?}: {why}; write `$${{` for a literal dollar",
                format!("{quoted}{ellipsis}")
            ),
        }
    }
}

fn eval(
    nodes: &[Node<'_>],
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), InterpolationError> {
    for node in nodes {
        match node {
            Node::Lit(t) => out.push_str(t),
            Node::Var { name, op: None } => {
                if let Some(v) = lookup(name) {
                    out.push_str(&v);
                }
            }
            Node::Var {
                name,
                op: Some((op, operand)),
            } => {
                let value = lookup(name);
                let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
                match op {
                    Op::DefaultIfUnsetOrEmpty | Op::DefaultIfUnset => {
                        let use_value = match op {
                            Op::DefaultIfUnsetOrEmpty => non_empty,
                            _ => value.is_some(),
                        };
                        match value {
                            Some(v) if use_value => out.push_str(&v),
                            _ => eval(operand, lookup, out)?,
                        }
                    }
                    Op::RequiredNonEmpty | Op::Required => {
                        let present = match op {
                            Op::RequiredNonEmpty => non_empty,
                            _ => value.is_some(),
                        };
                        match value {
                            Some(v) if present => out.push_str(&v),
                            _ => {
                                let mut reason = String::new();
                                eval(operand, lookup, &mut reason)?;
                                let message = if reason.is_empty() {
                                    format!("required variable {name} is missing a value")
                                } else {
                                    format!("required variable {name} is missing a value: {reason}")
                                };
                                return Err(InterpolationError { message });
                            }
                        }
                    }
                    Op::AltIfNonEmpty | Op::AltIfSet => {
                        let use_alt = match op {
                            Op::AltIfNonEmpty => non_empty,
                            _ => value.is_some(),
                        };
                        if use_alt {
                            eval(operand, lookup, out)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A lookup with `SET=value`, `EMPTY=` (set but empty), `B=bee`, `DOLLAR=$X` and nothing else.
    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "B" => Some("bee".into()),
            "DOLLAR" => Some("$X".into()),
            "lower_9" => Some("low".into()),
            _ => None,
        }
    }

    fn ok(s: &str) -> String {
        interpolate(s, &env).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match interpolate(s, &env) {
            Ok(v) => panic!("{s:?} gave {v:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_variables() {
        assert_eq!(ok("$SET"), "value");
        assert_eq!(ok("${SET}"), "value");
        assert_eq!(ok("a${SET}b"), "avalueb");
        assert_eq!(ok("$lower_9"), "low");
        assert_eq!(ok("${lower_9}"), "low");
        assert_eq!(ok("$UNSET"), "");
        assert_eq!(ok("${UNSET}"), "");
        assert_eq!(ok("x${EMPTY}y"), "xy");
        assert_eq!(ok("$SET$B"), "valuebee");
        assert_eq!(ok("no dollars {here}"), "no dollars {here}");
        assert_eq!(ok(""), "");
    }

    #[test]
    fn a_name_ends_at_the_first_non_name_character() {
        assert_eq!(ok("$SET-x"), "value-x");
        assert_eq!(ok("$SET.x"), "value.x");
        assert_eq!(ok("$SET/path"), "value/path");
        assert_eq!(ok("$SETX"), "", "SETX is a different, unset variable");
        assert_eq!(ok("$B:1"), "bee:1");
        assert_eq!(ok("${B}x"), "beex");
        assert_eq!(ok("$B}"), "bee}", "a `}}` outside `${{` is ordinary");
    }

    #[test]
    fn values_are_not_interpolated_again() {
        assert_eq!(ok("$DOLLAR"), "$X");
        assert_eq!(ok("${UNSET:-$DOLLAR}"), "$X");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("$$SET"), "$SET");
        assert_eq!(ok("$${SET}"), "${SET}");
        assert_eq!(ok("$$$SET"), "$value");
        assert_eq!(ok("$$$$"), "$$");
        assert_eq!(ok("a$$b"), "a$b");
        assert_eq!(ok("${UNSET:-$$}"), "$");
        assert_eq!(ok("${UNSET:-$${SET}}"), "${SET}");
    }

    #[test]
    fn a_dollar_that_starts_no_variable_is_kept() {
        assert_eq!(ok("$"), "$");
        assert_eq!(ok("price: 5$"), "price: 5$");
        assert_eq!(ok("$ x"), "$ x");
        assert_eq!(ok("$1"), "$1");
        assert_eq!(ok("$-"), "$-");
        assert_eq!(ok("$}"), "$}");
        assert_eq!(ok("$é"), "$é");
        assert_eq!(ok("${UNSET:-$}"), "$");
    }

    #[test]
    fn colon_dash_defaults_when_unset_or_empty() {
        assert_eq!(ok("${UNSET:-def}"), "def");
        assert_eq!(ok("${EMPTY:-def}"), "def");
        assert_eq!(ok("${SET:-def}"), "value");
        assert_eq!(ok("${UNSET:-}"), "");
        assert_eq!(ok("${SET:-}"), "value");
        assert_eq!(ok("${UNSET:-a b:c-d}"), "a b:c-d");
        assert_eq!(ok("${UNSET:-:-}"), ":-");
    }

    #[test]
    fn dash_defaults_only_when_unset() {
        assert_eq!(ok("${UNSET-def}"), "def");
        assert_eq!(ok("${EMPTY-def}"), "");
        assert_eq!(ok("${SET-def}"), "value");
        assert_eq!(ok("${UNSET-}"), "");
    }

    #[test]
    fn plus_gives_the_alternative_when_set() {
        assert_eq!(ok("${SET:+alt}"), "alt");
        assert_eq!(ok("${EMPTY:+alt}"), "");
        assert_eq!(ok("${UNSET:+alt}"), "");
        assert_eq!(ok("${SET+alt}"), "alt");
        assert_eq!(ok("${EMPTY+alt}"), "alt");
        assert_eq!(ok("${UNSET+alt}"), "");
        assert_eq!(ok("${SET:+[$B]}"), "[bee]");
    }

    #[test]
    fn required_variables() {
        assert_eq!(ok("${SET:?boom}"), "value");
        assert_eq!(ok("${SET?boom}"), "value");
        assert_eq!(
            ok("${EMPTY?boom}"),
            "",
            "`?` accepts a set but empty variable"
        );
        let want = |name: &str, reason: &str| {
            if reason.is_empty() {
                format!("required variable {name} is missing a value")
            } else {
                format!("required variable {name} is missing a value: {reason}")
            }
        };
        assert_eq!(err("${DB_PASS:?set it}"), want("DB_PASS", "set it"));
        assert_eq!(err("x ${DB_PASS?set it} y"), want("DB_PASS", "set it"));
        assert_eq!(err("${EMPTY:?set it}"), want("EMPTY", "set it"));
        assert_eq!(err("${UNSET:?}"), want("UNSET", ""));
        assert_eq!(err("${UNSET?}"), want("UNSET", ""));
        // The message is interpolated too.
        assert_eq!(err("${UNSET?need $B here}"), want("UNSET", "need bee here"));
        assert_eq!(err("${UNSET:?${SET:-x}!}"), want("UNSET", "value!"));
        // The first error wins, left to right.
        assert_eq!(err("${ONE:?1} ${TWO:?2}"), want("ONE", "1"));
    }

    #[test]
    fn the_error_type_displays_its_message() {
        let e = interpolate("${DB_PASS:?set it}", &env).unwrap_err();
        assert_eq!(
            e,
            InterpolationError {
                message: "required variable DB_PASS is missing a value: set it".into()
            }
        );
        assert_eq!(e.to_string(), e.message);
    }

    #[test]
    fn nested_defaults() {
        assert_eq!(ok("${UNSET:-${B}}"), "bee");
        assert_eq!(ok("${UNSET:-${UNSET2:-deep}}"), "deep");
        assert_eq!(ok("${UNSET:-${UNSET2:-${B}-x}}"), "bee-x");
        assert_eq!(ok("${UNSET:-$B}"), "bee");
        assert_eq!(ok("${UNSET:-a${B}c}"), "abeec");
        assert_eq!(ok("${UNSET:-${SET}}/${B}"), "value/bee");
        assert_eq!(ok("${SET:-${UNSET:?not evaluated}}"), "value");
        assert_eq!(ok("${SET-${UNSET:?not evaluated}}"), "value");
        assert_eq!(ok("${UNSET:+${UNSET2:?not evaluated}}"), "");
        assert!(err("${UNSET:-${UNSET2:?inner}}").contains("UNSET2 is missing a value: inner"));
    }

    #[test]
    fn balanced_braces_in_a_default() {
        assert_eq!(ok("${UNSET:-{x}}"), "{x}");
        assert_eq!(ok("${UNSET:-{a{b}c}}"), "{a{b}c}");
        assert_eq!(ok("${UNSET:-{\"k\": 1}}"), "{\"k\": 1}");
        assert_eq!(ok("${SET:-{x}}!"), "value!");
        assert_eq!(
            ok("${UNSET:-x}}"),
            "x}",
            "the extra `}}` is outside and ordinary"
        );
    }

    #[test]
    fn invalid_braced_forms_are_errors() {
        let unclosed = err("${A");
        assert_eq!(
            unclosed,
            "invalid interpolation format for \"${A\": a `${` is not closed; write `$${` for a \
             literal dollar"
        );
        for s in [
            "${",
            "x ${",
            "${A:",
            "${A:-",
            "${A:-x",
            "${A:-${B}",
            "${A:-{x}",
            "${A-x ${B:-y}",
        ] {
            assert!(err(s).contains("a `${` is not closed"), "{s:?}: {}", err(s));
        }
        for s in ["${}", "${1}", "${ A}", "${-x}", "${é}", "${$}"] {
            assert!(
                err(s).contains("must be followed by a variable name"),
                "{s:?}: {}",
                err(s)
            );
        }
        for s in [
            "${A B}",
            "${A:x}",
            "${A:}",
            "${A/foo/bar}",
            "${A.b}",
            "${A=x}",
        ] {
            let e = err(s);
            assert!(e.contains("after the name `A` comes `}`"), "{s:?}: {e}");
            assert!(
                e.starts_with(&format!("invalid interpolation format for {s:?}")),
                "{e}"
            );
        }
        // Syntax in an unused default is still checked.
        assert!(err("${SET:-${A}").contains("not closed"));
        assert!(err("${SET:-${}}").contains("variable name"));
        assert!(err("${SET:-${1}}").contains("variable name"));
    }

    #[test]
    fn the_error_quotes_only_the_bad_part() {
        let e = err("ok ${SET} then ${A:x} and more");
        assert!(
            e.starts_with("invalid interpolation format for \"${A:x}\":"),
            "{e}"
        );
        let long = format!("${{{}", "A".repeat(200));
        let e = err(&long);
        assert!(e.contains('…') && e.len() < 200, "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}x{}", "${U:-".repeat(10_000), "}".repeat(10_000));
        assert!(err(&deep).contains("nested more than"));
        let fine = format!("{}x{}", "${U:-".repeat(20), "}".repeat(20));
        assert_eq!(ok(&fine), "x");
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(ok("héllo ${SET} wörld ✓"), "héllo value wörld ✓");
        assert_eq!(ok("${UNSET:-日本}"), "日本");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = interpolate(&s, &env);
        }

        #[test]
        fn never_panics_on_dollar_heavy_text(s in "[${}:?+\\-A-Za-z_0-9 é]{0,40}") {
            let _ = interpolate(&s, &env);
        }

        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]*") {
            prop_assert_eq!(interpolate(&s, &env).unwrap(), s);
        }

        #[test]
        fn escaped_dollars_round_trip(s in "\\PC*") {
            // Doubling every `$` makes any text literal.
            prop_assert_eq!(interpolate(&s.replace('$', "$$"), &env).unwrap(), s);
        }
    }
}
