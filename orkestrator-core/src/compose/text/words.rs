//! Splitting a Compose string `command` or `entrypoint` into words.
//!
//! Compose splits `command: echo "hello world"` into `["echo", "hello world"]` as a POSIX shell
//! would, without running a shell and without expanding anything. The rules (POSIX "Token
//! Recognition" and "Quoting", with no expansion and no operators):
//!
//! - spaces, tabs and line ends separate words; several in a row are one separator;
//! - `'…'` keeps everything inside it literally (a backslash too); a `'` cannot appear inside;
//! - `"…"` keeps everything literally except that a backslash escapes `$`, `` ` ``, `"`, `\` and a
//!   line end (a backslash and a line end vanish); before any other character the backslash stays;
//! - outside quotes a backslash makes the next character literal (`\ ` is a space inside a word),
//!   and a backslash before a line end joins the lines;
//! - quotes join with the text around them (`a"b c"d` is one word `ab cd`), and `''` or `""` alone
//!   is an empty word;
//! - `$`, `*`, `~`, `|`, `;`, `&`, `<`, `>` and the like are ordinary characters: nothing is
//!   expanded, piped or redirected (compose-go's splitter stops at `;`, `&`, `|`, `<`, `>`; here
//!   they stay in the words, so `sh -c` is still needed to run a pipeline);
//! - an unclosed quote is an error, and so is a backslash at the very end (a shell would wait for
//!   another line).

/// Splits a command string into words as a POSIX shell would, without expansion (as Compose does
/// for string `command`/`entrypoint`): single quotes, double quotes with backslash escapes,
/// backslash escapes outside quotes, whitespace separation. Error on an unclosed quote.
pub(crate) fn split_shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    // The word being built, or None between words (so that `''` can make an empty word).
    let mut word: Option<String> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(n) => word.get_or_insert_with(String::new).push(n),
                None => {
                    return Err(format!(
                        "{s:?} ends with a lone backslash (remove it, or write \\\\ for a \
                         backslash)"
                    ));
                }
            },
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => w.push(n),
                        None => return Err(unclosed(s, "single")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek().copied() {
                            Some(n @ ('$' | '`' | '"' | '\\')) => {
                                chars.next();
                                w.push(n);
                            }
                            Some('\n') => {
                                chars.next();
                            }
                            _ => w.push('\\'),
                        },
                        Some(n) => w.push(n),
                        None => return Err(unclosed(s, "double")),
                    }
                }
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

fn unclosed(s: &str, kind: &str) -> String {
    format!(
        "{s:?} has an unclosed {kind} quote (close it, or escape a literal quote with a backslash \
         outside quotes)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(s: &str) -> Vec<String> {
        split_shell_words(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn whitespace_separates_words() {
        assert_eq!(
            split("echo hello world"),
            words(&["echo", "hello", "world"])
        );
        assert_eq!(split("  a \t b\n\nc  "), words(&["a", "b", "c"]));
        assert_eq!(split("a\r\nb"), words(&["a", "b"]));
        assert_eq!(split(""), words(&[]));
        assert_eq!(split("   \t\n"), words(&[]));
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(split("echo 'hello world'"), words(&["echo", "hello world"]));
        assert_eq!(split(r"'a\b' '$HOME' '\'"), words(&[r"a\b", "$HOME", "\\"]));
        assert_eq!(split("'say \"hi\"'"), words(&["say \"hi\""]));
        assert_eq!(split("'multi\nline'"), words(&["multi\nline"]));
    }

    #[test]
    fn double_quotes_with_their_escapes() {
        assert_eq!(
            split(r#"echo "hello world""#),
            words(&["echo", "hello world"])
        );
        assert_eq!(
            split(r#""a \"quoted\" word""#),
            words(&["a \"quoted\" word"])
        );
        assert_eq!(split(r#""\\ \$ \` \n \a""#), words(&[r"\ $ ` \n \a"]));
        assert_eq!(split("\"line\\\ncontinued\""), words(&["linecontinued"]));
        assert_eq!(split(r#""it's""#), words(&["it's"]));
        assert_eq!(split(r#""$HOME ${X}""#), words(&["$HOME ${X}"]));
    }

    #[test]
    fn backslashes_outside_quotes() {
        assert_eq!(split(r"a\ b c"), words(&["a b", "c"]));
        assert_eq!(split(r#"\'\"\\"#), words(&["'\"\\"]));
        assert_eq!(split(r"\n\t"), words(&["nt"]));
        assert_eq!(
            split("a\\\nb"),
            words(&["ab"]),
            "a backslash-newline joins lines"
        );
        assert_eq!(split("a \\\n b"), words(&["a", "b"]));
    }

    #[test]
    fn quotes_join_the_text_around_them() {
        assert_eq!(split(r#"a"b c"d"#), words(&["ab cd"]));
        assert_eq!(split(r#"--opt='x y'"z"w"#), words(&["--opt=x yzw"]));
        assert_eq!(split(r#"'a'"b"c"#), words(&["abc"]));
    }

    #[test]
    fn empty_quotes_are_empty_words() {
        assert_eq!(split("''"), words(&[""]));
        assert_eq!(split(r#"a "" b ''"#), words(&["a", "", "b", ""]));
        assert_eq!(split(r#"x''"#), words(&["x"]));
    }

    #[test]
    fn nothing_is_expanded_or_interpreted() {
        assert_eq!(
            split("sh -c echo $HOME | wc -l; ls *.txt > out & ~"),
            words(&[
                "sh", "-c", "echo", "$HOME", "|", "wc", "-l;", "ls", "*.txt", ">", "out", "&", "~"
            ])
        );
        assert_eq!(
            split(r#"sh -c "echo $HOME | wc -l""#),
            words(&["sh", "-c", "echo $HOME | wc -l"])
        );
        assert_eq!(
            split("# not a comment"),
            words(&["#", "not", "a", "comment"])
        );
    }

    #[test]
    fn unicode_words() {
        assert_eq!(split("échö '日本 語' ✓"), words(&["échö", "日本 語", "✓"]));
    }

    #[test]
    fn unclosed_quotes_and_a_trailing_backslash_are_errors() {
        let e = split_shell_words("echo 'oops").unwrap_err();
        assert!(e.contains("unclosed single quote"), "{e}");
        let e = split_shell_words(r#"echo "oops"#).unwrap_err();
        assert!(e.contains("unclosed double quote"), "{e}");
        let e = split_shell_words(r#"echo "oops\""#).unwrap_err();
        assert!(e.contains("unclosed double quote"), "{e}");
        assert!(
            split_shell_words(r"'\''").is_err(),
            "no escapes inside single quotes"
        );
        let e = split_shell_words("echo \\").unwrap_err();
        assert!(e.contains("lone backslash"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = split_shell_words(&s);
        }

        #[test]
        fn never_panics_on_quote_heavy_text(s in "[ '\"\\\\a\n\t$é]{0,40}") {
            let _ = split_shell_words(&s);
        }

        #[test]
        fn plain_words_split_on_whitespace(ws in proptest::collection::vec("[a-z0-9_./=-]{1,8}", 0..6)) {
            prop_assert_eq!(split_shell_words(&ws.join("  ")).unwrap(), ws);
        }

        #[test]
        fn single_quoting_any_words_round_trips(ws in proptest::collection::vec("[^']{0,8}", 0..6)) {
            let line = ws.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(split_shell_words(&line).unwrap(), ws);
        }
    }
}
