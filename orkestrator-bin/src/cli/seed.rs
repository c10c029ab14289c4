//! The original single-dash flags, rewritten into subcommands and long flags before clap sees
//! them.

/// Rewrites the original single-dash flags (`-server`, `-worker`, `-client`, `-scheduler`,
/// `-file F`, `-port N`) into subcommands and long flags. `-port` means the port to listen on for
/// `-server`, and the manager's port on localhost for `-worker`, `-client` and `-scheduler`.
/// Arguments without seed flags pass through unchanged.
pub fn translate_seed_args(args: Vec<String>) -> Vec<String> {
    let mut mode: Option<&str> = None;
    let mut file: Option<String> = None;
    let mut port: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    let mut saw_seed = false;
    let mut it = args.into_iter();
    let program = it.next().unwrap_or_else(|| "orkestrator".into());
    let mut items: Vec<String> = it.collect();
    items.reverse();
    while let Some(a) = items.pop() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with('-') && !f.starts_with("--") => {
                (f.to_owned(), Some(v.to_owned()))
            }
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "-server" | "-worker" | "-client" | "-scheduler" if inline.is_none() => {
                saw_seed = true;
                mode = Some(match flag.as_str() {
                    "-server" => "server",
                    "-worker" => "worker",
                    "-client" => "client",
                    _ => "scheduler",
                });
            }
            "-file" | "-port" => {
                let value = inline.or_else(|| items.pop());
                match value {
                    Some(v) => {
                        saw_seed = true;
                        if flag == "-file" {
                            file = Some(v);
                        } else {
                            port = Some(v);
                        }
                    }
                    None => rest.push(a),
                }
            }
            _ => rest.push(a),
        }
    }
    if !saw_seed {
        let mut out = vec![program];
        out.extend(rest);
        return out;
    }
    let mut out = vec![program];
    match mode {
        Some("server") => {
            out.push("server".into());
            if let Some(p) = port {
                out.extend(["--port".into(), p]);
            }
        }
        Some(m @ ("worker" | "scheduler")) => {
            out.push(m.into());
            if let Some(p) = port {
                out.extend(["--manager".into(), format!("http://127.0.0.1:{p}")]);
            }
        }
        Some("client") | None => {
            out.push("run".into());
            if let Some(p) = port {
                out.extend(["--manager".into(), format!("http://127.0.0.1:{p}")]);
            }
        }
        Some(_) => unreachable!("modes are fixed above"),
    }
    if let Some(f) = file {
        out.extend(["--file".into(), f]);
    }
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        translate_seed_args(v).join(" ")
    }

    #[test]
    fn seed_forms_translate() {
        assert_eq!(t("ork -server -port 5555"), "ork server --port 5555");
        assert_eq!(
            t("ork -worker -port 5555"),
            "ork worker --manager http://127.0.0.1:5555"
        );
        assert_eq!(
            t("ork -client -file job.yaml -port 5555"),
            "ork run --manager http://127.0.0.1:5555 --file job.yaml"
        );
        assert_eq!(t("ork -port=6000 -server"), "ork server --port 6000");
        assert_eq!(t("ork -client -file=j.toml"), "ork run --file j.toml");
        assert_eq!(
            t("ork -scheduler -port 7"),
            "ork scheduler --manager http://127.0.0.1:7"
        );
    }

    #[test]
    fn modern_forms_pass_through() {
        assert_eq!(
            t("ork run -f job.yaml --wait"),
            "ork run -f job.yaml --wait"
        );
        assert_eq!(t("ork status web -o json"), "ork status web -o json");
        assert_eq!(t("ork server -p 5555"), "ork server -p 5555");
    }
}
