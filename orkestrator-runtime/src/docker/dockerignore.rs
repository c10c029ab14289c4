//! `.dockerignore` patterns with Docker's semantics.
//!
//! Each non-empty line not starting with `#` is a pattern; a leading `!` makes it re-include
//! what earlier patterns excluded. Patterns are cleaned like Go's `filepath.Clean` (`.` segments
//! and doubled slashes go, `..` folds into its parent) and a leading `/` is ignored. A pattern
//! matches segment by segment with Go's `filepath.Match` rules (`*` any run of characters but
//! `/`, `?` one character, `[a-z]`/`[^a-z]` a class, `\` escapes), and a segment of exactly
//! `**` matches any number of segments, none included. A pattern that matches a directory
//! matches everything under it. The last pattern that matches a path decides.

/// One cleaned pattern.
#[derive(Debug, Clone)]
struct Pattern {
    /// Its segments, split at `/`.
    segments: Vec<String>,
    /// Whether it re-includes (`!pattern`).
    reinclude: bool,
}

/// The patterns of a `.dockerignore` file, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Reads the patterns from the text of a `.dockerignore` file.
    ///
    /// Returns the 1-based line and the reason for a pattern that can never be valid (an
    /// unterminated `[` class or a trailing `\`).
    pub(crate) fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut ignore = DockerIgnore::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (reinclude, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                continue;
            }
            ignore
                .push(pattern, reinclude)
                .map_err(|why| (i + 1, format!("{line}: {why}")))?;
        }
        Ok(ignore)
    }

    /// Adds a pattern at the end (so it wins over the earlier ones).
    pub(crate) fn push(&mut self, pattern: &str, reinclude: bool) -> Result<(), String> {
        let segments = clean(pattern);
        for s in &segments {
            if s != "**" {
                check_segment(s)?;
            }
        }
        self.patterns.push(Pattern {
            segments,
            reinclude,
        });
        Ok(())
    }

    /// Whether any pattern re-includes (then an excluded directory must still be walked).
    pub(crate) fn has_reincludes(&self) -> bool {
        self.patterns.iter().any(|p| p.reinclude)
    }

    /// Whether the path (relative to the context, `/`-separated) is excluded.
    pub(crate) fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // A re-include can only change an excluded path, an exclude only an included one.
            if p.reinclude != excluded {
                continue;
            }
            let hit = (1..=parts.len()).any(|n| match_segments(&p.segments, &parts[..n]));
            if hit {
                excluded = !p.reinclude;
            }
        }
        excluded
    }
}

/// The segments of `pattern` once cleaned like Go's `filepath.Clean`, without a leading `/`.
fn clean(pattern: &str) -> Vec<String> {
    let rooted = pattern.starts_with('/');
    let mut out: Vec<String> = Vec::new();
    for seg in pattern.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..".into());
                }
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

/// Checks a segment's syntax as `filepath.Match` would reject it.
fn check_segment(seg: &str) -> Result<(), String> {
    let chars: Vec<char> = seg.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("a trailing \\ escapes nothing".into());
                }
                i += 2;
            }
            '[' => {
                let (_, end) = parse_class(&chars, i)
                    .ok_or_else(|| "a [ character class is not closed with ]".to_string())?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether the pattern's segments match the path's segments exactly.
fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, path_rest)) => match_one(first, seg) && match_segments(rest, path_rest),
            None => false,
        },
    }
}

/// `filepath.Match` for one segment (no `/` in either).
fn match_one(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, 0, &n, 0)
}

fn match_from(p: &[char], mut pi: usize, n: &[char], mut ni: usize) -> bool {
    while pi < p.len() {
        match p[pi] {
            '*' => {
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                return (ni..=n.len()).any(|k| match_from(p, pi, n, k));
            }
            '?' => {
                if ni >= n.len() {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
            '[' => {
                let Some((class, end)) = parse_class(p, pi) else {
                    return false;
                };
                if ni >= n.len() || !class.matches(n[ni]) {
                    return false;
                }
                pi = end;
                ni += 1;
            }
            '\\' if pi + 1 < p.len() => {
                if ni >= n.len() || n[ni] != p[pi + 1] {
                    return false;
                }
                pi += 2;
                ni += 1;
            }
            c => {
                if ni >= n.len() || n[ni] != c {
                    return false;
                }
                pi += 1;
                ni += 1;
            }
        }
    }
    ni == n.len()
}

/// A `[...]` character class.
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// Parses the class starting at `p[start] == '['`; returns it and the index after its `]`.
fn parse_class(p: &[char], start: usize) -> Option<(Class, usize)> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some((Class { negated, ranges }, i + 1));
        }
        first = false;
        let (lo, next) = class_char(p, i)?;
        i = next;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&c| c != ']') {
            let (hi, next) = class_char(p, i + 1)?;
            if hi < lo {
                return None;
            }
            ranges.push((lo, hi));
            i = next;
        } else {
            ranges.push((lo, lo));
        }
    }
}

/// One (possibly escaped) character of a class; `None` at the end of the pattern.
fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match *p.get(i)? {
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn plain_names_and_directories() {
        let i = ignore("node_modules\ntarget/\n");
        assert!(i.excludes("node_modules"));
        assert!(
            i.excludes("node_modules/a/b.js"),
            "a directory excludes its contents"
        );
        assert!(i.excludes("target/debug/x"));
        assert!(
            !i.excludes("src/node_modules"),
            "patterns are anchored at the root"
        );
        assert!(!i.excludes("node_modules2"));
    }

    #[test]
    fn globs_match_within_one_segment() {
        let i = ignore("*.log\ndocs/?.md\n[a-c]x\n[^0-9]y\n");
        assert!(i.excludes("app.log"));
        assert!(!i.excludes("logs/app.log"), "* does not cross /");
        assert!(i.excludes("docs/a.md"));
        assert!(!i.excludes("docs/ab.md"));
        assert!(i.excludes("bx"));
        assert!(!i.excludes("dx"));
        assert!(i.excludes("zy"));
        assert!(!i.excludes("5y"));
        assert!(ignore("*/*.tmp").excludes("a/b.tmp"));
        assert!(!ignore("*/*.tmp").excludes("a/b/c.tmp"));
        assert!(ignore(r"a\*b").excludes("a*b"));
        assert!(!ignore(r"a\*b").excludes("axb"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let i = ignore("**/*.pyc\nsecret/**\nx/**/y\n");
        assert!(i.excludes("a.pyc"), "** matches zero segments");
        assert!(i.excludes("a/b/c/d.pyc"));
        assert!(i.excludes("secret/a/b"));
        assert!(i.excludes("x/y"));
        assert!(i.excludes("x/1/2/y"));
        assert!(!i.excludes("x/1/2/z"));
    }

    #[test]
    fn exclamation_reincludes_and_the_last_match_wins() {
        let i = ignore("*.md\n!README.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(!i.excludes("README.md"));
        let i = ignore("!README.md\n*.md\n");
        assert!(
            i.excludes("README.md"),
            "a later exclude wins over an earlier re-include"
        );
        let i = ignore("docs\n!docs/keep.txt\n");
        assert!(i.excludes("docs/other.txt"));
        assert!(!i.excludes("docs/keep.txt"));
        assert!(i.has_reincludes());
        assert!(!ignore("docs").has_reincludes());
    }

    #[test]
    fn comments_blank_lines_and_cleaning() {
        let i = ignore("# a comment\n\n  \n/build\n./tmp//cache/\nlib/../out\n  spaced  \n");
        assert!(!i.excludes("# a comment"));
        assert!(i.excludes("build"), "a leading / is ignored");
        assert!(i.excludes("tmp/cache/x"), "./ and // are cleaned");
        assert!(i.excludes("out"), "lib/.. folds away");
        assert!(!i.excludes("lib"));
        assert!(i.excludes("spaced"), "surrounding spaces are trimmed");
        assert!(!ignore("#x").excludes("#x"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_their_line() {
        let (line, why) = DockerIgnore::parse("ok\n[abc\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(why.contains("not closed"), "{why}");
        let (line, _) = DockerIgnore::parse(r"a\").unwrap_err();
        assert_eq!(line, 1);
    }

    #[test]
    fn classes_with_escapes_and_closing_bracket_first() {
        assert!(match_one("[]a]", "]"));
        assert!(match_one("[\\-]", "-"));
        assert!(!match_one("[a-c]", "d"));
        assert!(match_one("*.t?t", "notes.txt"));
        assert!(match_one("*", ""));
    }
}
