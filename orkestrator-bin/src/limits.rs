//! Process limits raised at startup.
//!
//! A manager serving thousands of workers holds one socket per long-poll, and a worker one per
//! container it watches: the usual soft limit of 1,024 open files is far too low for either. The
//! hard limit is what the administrator allows, so the soft limit is raised to it. Nothing here
//! ever stops the program from starting: a limit that cannot be read or raised is logged and left
//! as it is.

use rlimit::Resource;

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, logging at debug
/// level what it did. Never fails: on an error the limit stays as it was.
pub fn raise_open_files_limit() {
    let (soft, hard) = match rlimit::getrlimit(Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the open-files limit; leaving it as it is");
            return;
        }
    };
    if soft >= hard {
        tracing::debug!(soft, hard, "open-files limit already at its hard limit");
        return;
    }
    match rlimit::setrlimit(Resource::NOFILE, hard, hard) {
        Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-files soft limit"),
        Err(e) => tracing::debug!(
            soft,
            hard,
            error = %e,
            "cannot raise the open-files soft limit; leaving it as it is"
        ),
    }
}
