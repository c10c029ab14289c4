//! A command written as one line (`command: sleep 100`), split into words by the POSIX shell's
//! quoting rules, with nothing expanded and no shell run.

/// Splits `line` into words as a POSIX shell quotes them: blanks separate words; `'...'` keeps
/// everything inside as written; `"..."` too, but for `\` before `$`, `` ` ``, `"`, `\` or a
/// newline; an unquoted `\` keeps the next character (and joins lines before a newline).
///
/// Nothing is expanded (`$HOME`, `*`, `~` are not what a shell would make of them), so what only
/// a shell does is refused where it is written unquoted: `|`, `&`, `;`, `<`, `>`, `(`, `)`, `` ` ``,
/// `$` and a `#` that starts a word. The message says how to write it instead.
pub(super) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has begun: `''` is a word, though empty.
    let mut open = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if open {
                    words.push(std::mem::take(&mut word));
                    open = false;
                }
            }
            '\'' => {
                open = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => return Err(unclosed("'")),
                    }
                }
            }
            '"' => {
                open = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(x @ ('$' | '`' | '"' | '\\')) => word.push(x),
                            Some(x) => {
                                word.push('\\');
                                word.push(x);
                            }
                            None => return Err(unclosed("\"")),
                        },
                        Some(x @ ('$' | '`')) => return Err(shell_only(x)),
                        Some(x) => word.push(x),
                        None => return Err(unclosed("\"")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(x) => {
                    open = true;
                    word.push(x);
                }
                None => {
                    return Err(
                        "ends with a lone \\ (write \\\\ for a backslash, or write the command as a list)"
                            .to_owned(),
                    );
                }
            },
            '#' if !open => return Err(shell_only('#')),
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '`' | '$' => return Err(shell_only(c)),
            _ => {
                open = true;
                word.push(c);
            }
        }
    }
    if open {
        words.push(word);
    }
    Ok(words)
}

fn unclosed(quote: &str) -> String {
    format!("has a {quote} that is not closed (close it, or write the command as a list of words)")
}

fn shell_only(c: char) -> String {
    format!(
        "uses `{c}`, which only a shell understands, and a command line runs no shell: quote it \
         (e.g. '{c}') to pass it as written, or run a shell: [\"sh\", \"-c\", \"...\"]"
    )
}

#[cfg(test)]
mod tests {
    use super::split_words;

    fn ok(line: &str) -> Vec<String> {
        split_words(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn words_split_as_a_posix_shell_quotes_them() {
        let cases: &[(&str, &[&str])] = &[
            ("sleep 100", &["sleep", "100"]),
            ("  sleep\t 100 \n", &["sleep", "100"]),
            ("echo 'a b' \"c d\"", &["echo", "a b", "c d"]),
            ("echo it\\'s", &["echo", "it's"]),
            ("echo 'it'\\''s'", &["echo", "it's"]),
            ("echo \"a \\\"q\\\" \\\\ \\n\"", &["echo", "a \"q\" \\ \\n"]),
            (
                "echo '$HOME' \"*\" ~ *.txt",
                &["echo", "$HOME", "*", "~", "*.txt"],
            ),
            ("echo '' \"\"", &["echo", "", ""]),
            ("a\\\nb c", &["ab", "c"]),
            ("echo a#b", &["echo", "a#b"]),
            ("httpd -f -p 8080", &["httpd", "-f", "-p", "8080"]),
            ("", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(ok(line), *want, "{line:?}");
        }
    }

    #[test]
    fn what_only_a_shell_does_is_refused_with_the_way_to_write_it() {
        for line in [
            "echo $HOME",
            "echo \"$HOME\"",
            "a | b",
            "a && b",
            "a; b",
            "a > f",
            "echo `id`",
            "echo # c",
            "(a)",
        ] {
            let e = split_words(line).unwrap_err();
            assert!(e.contains("sh\", \"-c\""), "{line:?}: {e}");
        }
        for line in ["echo 'a", "echo \"a", "echo a\\"] {
            let e = split_words(line).unwrap_err();
            assert!(e.contains("list"), "{line:?}: {e}");
        }
    }
}
