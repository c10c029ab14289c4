//! `.env` files and a service's `env_file`s, read as docker compose reads them.
//!
//! One variable a line (a quoted value may span lines):
//!
//! ```text
//! # a comment line
//! PLAIN=some value        # a comment after an unquoted value (a `#` after whitespace)
//! export EXPORTED=1       # `export ` before the key is ignored
//! EMPTY=
//! SINGLE='literal $NOT ${INTERPOLATED} \n'
//! DOUBLE="escapes \n \t \\ \" \$ and ${INTERPOLATION}"
//! MULTI="first line
//! second line"
//! INHERITED               # no `=`: the value comes from the environment, or the key is skipped
//! ```
//!
//! The details, following compose-go's parser where the brief does not say otherwise:
//!
//! - keys are letters, digits, `_`, `.` and `-`; whitespace around the key and around `=` is
//!   ignored; anything else in a key is an error;
//! - an unquoted value runs to the end of the line, is cut at the first `#` that follows
//!   whitespace, is trimmed, and is interpolated;
//! - a single-quoted value is literal, except that `\'` stands for a `'`;
//! - a double-quoted value has its escapes replaced (`\n`, `\t`, `\r`, `\\`, `\"`, `\$` for a
//!   literal `$`; any other backslash is kept) and is then interpolated;
//! - after a closing quote only whitespace and a `#` comment may follow on that line;
//! - interpolation sees the keys set earlier in the same file first, then `lookup` (compose-go
//!   asks its lookup first; this reader lets a file's own keys win, as Orkestrator's brief says);
//! - a key set twice keeps its first place in the list and takes the later value;
//! - a UTF-8 byte-order mark and `\r\n` line ends are accepted.

use super::interpolate::interpolate;

/// Parses a .env / env_file text: `KEY=VALUE`, `export KEY=VALUE`, comments (`#` lines, and ` #`
/// after an unquoted value), blank lines, single quotes (literal), double quotes (escapes \n \t
/// \\ \" and interpolation), unquoted values trimmed and interpolated, multi-line
/// double/single-quoted values, `KEY` alone (no `=`) meaning: take it from `lookup` (skip when
/// unset). Earlier keys of the same file are visible to later values' interpolation before
/// `lookup`. Errors name the line: "line 3: ...".
pub(crate) fn parse_dotenv(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let line_start = text.len() - rest.len();
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        rest = after;
        let stmt = line.trim_start_matches(is_blank);
        if stmt.trim_end_matches(is_blank).is_empty() || stmt.starts_with('#') {
            continue;
        }
        let stmt = strip_export(stmt);
        let at = |msg: String| format!("line {line_no}: {msg}");

        let (raw_key, value_part) = match stmt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (stmt, None),
        };
        // A `KEY # comment` with no `=`.
        let raw_key = match value_part {
            None => cut_comment(raw_key),
            Some(_) => raw_key,
        };
        let key = raw_key.trim_matches(is_blank);
        check_key(key, line).map_err(at)?;

        let Some(value_part) = value_part else {
            if let Some(v) = lookup(key) {
                set(&mut out, key, v);
            }
            continue;
        };

        let value_part = value_part.trim_start_matches(is_blank);
        let file_then_lookup = |name: &str| {
            out.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(name))
        };
        let value = match value_part.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                // The quoted value may run over later lines: search from its quote to the end of
                // the text. `value_part` is a suffix of `line`, which starts at `line_start`.
                let start_line = line_no;
                let open = line_start + line.len() - value_part.len();
                let Some((raw, used)) = find_closing(&text[open + 1..], quote) else {
                    return Err(format!(
                        "line {start_line}: the value of {key} opens a {} quote that is never \
                         closed (close it with {quote}, or escape a {quote} inside it with \\{quote})",
                        if quote == '"' { "double" } else { "single" }
                    ));
                };
                let close_end = open + 1 + used;
                line_no += text[open..close_end].matches('\n').count();
                let after_quote = &text[close_end..];
                let (tail, remaining) = after_quote.split_once('\n').unwrap_or((after_quote, ""));
                rest = remaining;
                let tail = tail.trim_matches(is_blank);
                if !tail.is_empty() && !tail.starts_with('#') {
                    return Err(format!(
                        "line {line_no}: unexpected {tail:?} after the closing quote of {key} \
                         (put it inside the quotes, or start a comment with #)"
                    ));
                }
                if quote == '\'' {
                    unescape_single(&raw)
                } else {
                    interpolate(&unescape_double(&raw), &file_then_lookup)
                        .map_err(|e| format!("line {start_line}: {key}: {e}"))?
                }
            }
            _ => {
                let v = cut_comment(value_part).trim_matches(is_blank);
                interpolate(v, &file_then_lookup).map_err(|e| at(format!("{key}: {e}")))?
            }
        };
        set(&mut out, key, value);
    }
    Ok(out)
}

/// Whitespace within a line (a `\r` of a `\r\n` line end included).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\u{b}' | '\u{c}')
}

fn strip_export(stmt: &str) -> &str {
    match stmt.strip_prefix("export") {
        Some(r) if r.starts_with(is_blank) => r.trim_start_matches(is_blank),
        _ => stmt,
    }
}

/// Cuts an unquoted text at the first `#` that follows whitespace.
fn cut_comment(s: &str) -> &str {
    let mut prev_blank = false;
    for (i, c) in s.char_indices() {
        if c == '#' && prev_blank {
            return &s[..i];
        }
        prev_blank = is_blank(c);
    }
    s
}

fn check_key(key: &str, line: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!(
            "{:?} has no variable name before the `=` (write NAME=value)",
            line.trim_end_matches(is_blank)
        ));
    }
    if let Some(c) = key
        .chars()
        .find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        let what = if is_blank(c) {
            "a space".to_owned()
        } else {
            format!("{c:?}")
        };
        return Err(format!(
            "the variable name {key:?} contains {what} (names are letters, digits, `_`, `.` and \
             `-`; write NAME=value)"
        ));
    }
    Ok(())
}

fn set(out: &mut Vec<(String, String)>, key: &str, value: String) {
    match out.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => out.push((key.to_owned(), value)),
    }
}

/// Finds the quote that closes a value, in the text after the opening quote. Returns the raw
/// content (backslashes as written, except that `\<quote>` stays as written too) and the byte
/// length used including the closing quote.
fn find_closing(s: &str, quote: char) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return Some((s[..i].to_owned(), i + 1));
        }
    }
    None
}

/// A single-quoted value: literal, but `\'` is a `'`.
fn unescape_single(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\'') => out.push('\''),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A double-quoted value's escapes, replaced, leaving text ready for interpolation: `\$` becomes
/// `$$` (a literal dollar to the interpolator) and a `$` from no escape is left to interpolate.
fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "EMPTY" => Some(String::new()),
            "SHADOWED" => Some("from lookup".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Vec<(String, String)> {
        parse_dotenv(text, &env).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(text: &str) -> String {
        let got = parse(text);
        assert_eq!(got.len(), 1, "{text:?} gave {got:?}");
        got[0].1.clone()
    }

    fn err(text: &str) -> String {
        match parse_dotenv(text, &env) {
            Ok(v) => panic!("{text:?} gave {v:?}, expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn basic_pairs_comments_and_blank_lines() {
        let text = "# top comment\n\nA=1\n  B = two  \n\t# indented comment\nexport C=3\nD=\n";
        assert_eq!(
            parse(text),
            pairs(&[("A", "1"), ("B", "two"), ("C", "3"), ("D", "")])
        );
        assert_eq!(parse(""), pairs(&[]));
        assert_eq!(parse("\n\n   \n# only\n"), pairs(&[]));
    }

    #[test]
    fn no_final_newline_crlf_and_bom() {
        assert_eq!(parse("A=1"), pairs(&[("A", "1")]));
        assert_eq!(
            parse("\u{feff}A=1\r\nB=\"x\"\r\nC='y'\r\n"),
            pairs(&[("A", "1"), ("B", "x"), ("C", "y")])
        );
    }

    #[test]
    fn keys() {
        assert_eq!(
            parse("a.b-c_D9=1\nexport=2\nexporter=3\nÉTÉ=4"),
            pairs(&[
                ("a.b-c_D9", "1"),
                ("export", "2"),
                ("exporter", "3"),
                ("ÉTÉ", "4")
            ])
        );
        let e = err("A=1\nMY KEY=2\n");
        assert!(
            e.starts_with("line 2: ") && e.contains("contains a space"),
            "{e}"
        );
        let e = err("\n\nA$B=1");
        assert!(e.starts_with("line 3: ") && e.contains("'$'"), "{e}");
        let e = err("=value");
        assert!(
            e.starts_with("line 1: ") && e.contains("no variable name"),
            "{e}"
        );
    }

    #[test]
    fn unquoted_values() {
        assert_eq!(one("A=  spaced value  "), "spaced value");
        assert_eq!(one("A=value # a comment"), "value");
        assert_eq!(one("A=value\t# a comment"), "value");
        assert_eq!(one("A=val#ue"), "val#ue", "a `#` inside a word is kept");
        assert_eq!(one("A=#not a comment"), "#not a comment");
        assert_eq!(one("A=a=b=c"), "a=b=c");
        // As in compose-go: the leading blanks go first, so this `#` follows none.
        assert_eq!(one("A= # not a comment"), "# not a comment");
        assert_eq!(one("A=it's \"fine\""), "it's \"fine\"");
        assert_eq!(
            one(r"A=back\slash\n"),
            r"back\slash\n",
            "no escapes unquoted"
        );
    }

    #[test]
    fn unquoted_values_are_interpolated() {
        assert_eq!(one("A=$HOME/x"), "/home/me/x");
        assert_eq!(one("A=${MISSING:-fallback}"), "fallback");
        assert_eq!(one("A=${EMPTY-kept empty}"), "");
        assert_eq!(one("A=$$HOME"), "$HOME");
        assert_eq!(one("A=$MISSING"), "");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            one(r"A='$HOME ${X:?no} \n \\ # not a comment'"),
            r"$HOME ${X:?no} \n \\ # not a comment"
        );
        assert_eq!(one(r"A='it\'s'"), "it's");
        assert_eq!(one("A=''"), "");
        assert_eq!(one("A='  padded  '"), "  padded  ");
        assert_eq!(one("A='x' # comment"), "x");
        assert_eq!(one("A='say \"hi\"'"), "say \"hi\"");
    }

    #[test]
    fn double_quotes_escape_then_interpolate() {
        assert_eq!(one(r#"A="a\nb\tc\\d\"e""#), "a\nb\tc\\d\"e");
        assert_eq!(one(r#"A="\$HOME is $HOME""#), "$HOME is /home/me");
        assert_eq!(one(r#"A="$$HOME""#), "$HOME");
        assert_eq!(one(r#"A="${MISSING:-d e f}""#), "d e f");
        assert_eq!(one(r#"A="keep \q and \'""#), r"keep \q and \'");
        assert_eq!(one(r#"A="""#), "");
        assert_eq!(one(r#"A="  # not a comment  ""#), "  # not a comment  ");
        assert_eq!(one("A=\"x\"   # comment"), "x");
        assert_eq!(one(r#"A="it's""#), "it's");
    }

    #[test]
    fn multi_line_quoted_values() {
        let text = "A=\"first\nsecond\n  third\"\nB='one\ntwo'\nC=3\n";
        assert_eq!(
            parse(text),
            pairs(&[
                ("A", "first\nsecond\n  third"),
                ("B", "one\ntwo"),
                ("C", "3")
            ])
        );
        // Errors after a multi-line value name the right line.
        let e = err("A=\"x\ny\"\nB=1\nC D=2\n");
        assert!(e.starts_with("line 4: "), "{e}");
        // A multi-line value ending at the end of the file.
        assert_eq!(parse("A='x\ny'"), pairs(&[("A", "x\ny")]));
        assert_eq!(
            parse("K=\"-----BEGIN-----\nabc\n-----END-----\"\n"),
            pairs(&[("K", "-----BEGIN-----\nabc\n-----END-----")])
        );
    }

    #[test]
    fn unterminated_quotes_name_their_line() {
        let e = err("A=1\nB=\"never closed\nC=3\n");
        assert!(
            e.starts_with("line 2: the value of B opens a double quote"),
            "{e}"
        );
        let e = err("A='x");
        assert!(
            e.starts_with("line 1: the value of A opens a single quote"),
            "{e}"
        );
        let e = err("A=\"ends with escaped quote\\\"");
        assert!(e.starts_with("line 1: "), "{e}");
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error() {
        let e = err("A=1\nB=\"x\" y\n");
        assert!(
            e.starts_with("line 2: unexpected \"y\" after the closing quote of B"),
            "{e}"
        );
        let e = err("B='x\nmore'junk\n");
        assert!(e.starts_with("line 2: "), "{e}");
    }

    #[test]
    fn a_key_alone_comes_from_the_lookup() {
        assert_eq!(
            parse("HOME\nMISSING\nEMPTY\n  SHADOWED   # comment\n"),
            pairs(&[
                ("HOME", "/home/me"),
                ("EMPTY", ""),
                ("SHADOWED", "from lookup")
            ])
        );
        assert_eq!(parse("export HOME"), pairs(&[("HOME", "/home/me")]));
    }

    #[test]
    fn earlier_keys_are_seen_first_by_later_values() {
        let text = "BASE=/srv\nDATA=${BASE}/data\nSHADOWED=mine\nS=$SHADOWED\nH=\"$HOME\"\nL=$L2\nL2=late\n";
        assert_eq!(
            parse(text),
            pairs(&[
                ("BASE", "/srv"),
                ("DATA", "/srv/data"),
                ("SHADOWED", "mine"),
                ("S", "mine"),
                ("H", "/home/me"),
                ("L", ""),
                ("L2", "late"),
            ])
        );
        // Single-quoted values are not interpolated even with file keys around.
        assert_eq!(parse("A=1\nB='$A'"), pairs(&[("A", "1"), ("B", "$A")]));
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_takes_the_last_value() {
        assert_eq!(
            parse("A=1\nB=2\nA=3\nC=$A"),
            pairs(&[("A", "3"), ("B", "2"), ("C", "3")])
        );
    }

    #[test]
    fn interpolation_errors_name_the_line_and_key() {
        let e = err("A=1\n\nB=${NEEDED:?set NEEDED in .env}\n");
        assert_eq!(
            e,
            "line 3: B: required variable NEEDED is missing a value: set NEEDED in .env"
        );
        let e = err("A=\"multi\nline\"\nB=\"${X\"\n");
        assert!(
            e.starts_with("line 3: B: invalid interpolation format"),
            "{e}"
        );
    }

    #[test]
    fn export_needs_whitespace_after_it() {
        assert_eq!(parse("export\tA=1"), pairs(&[("A", "1")]));
        assert_eq!(parse("exportA=1"), pairs(&[("exportA", "1")]));
    }
}
