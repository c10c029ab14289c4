//! Where the binary keeps its state: the data directories of managers and workers.

/// `$XDG_DATA_HOME/orkestrator/NAME`, else `~/.local/share/orkestrator/NAME`, else
/// `./.orkestrator/NAME`.
pub fn data_dir_named(name: &str) -> std::path::PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .map(|b| b.join("orkestrator"))
        .unwrap_or_else(|| std::path::PathBuf::from(".orkestrator"));
    base.join(name)
}

/// The manager's default data directory for `port`.
pub fn default_data_dir(port: u16) -> std::path::PathBuf {
    data_dir_named(&format!("manager-{port}"))
}
