//! Signals: when a long-running command is told to stop.

/// Resolves on Ctrl-C or SIGTERM, with the signal's name (`SIGINT`, `SIGTERM`).
pub async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = term => "SIGTERM",
    }
}

/// [`shutdown_signal`], logged: `SIGTERM received: WHAT shutting down`.
pub async fn logged_shutdown(what: &'static str) {
    let signal = shutdown_signal().await;
    tracing::info!("{signal} received: {what} shutting down");
}
