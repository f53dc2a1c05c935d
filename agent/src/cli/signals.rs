//! Ctrl-C and SIGTERM for the long-running commands: the first one cancels the shutdown token
//! (faults are healed and results written), a second Ctrl-C exits at once.

use tokio_util::sync::CancellationToken;

/// The shutdown token: cancelled on the first Ctrl-C or SIGTERM; a second Ctrl-C exits at once.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        interrupted().await;
        eprintln!("\nstopping: healing faults and writing results (Ctrl-C again to quit at once)");
        t.cancel();
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("quitting without waiting");
        std::process::exit(super::exit::QUIT_AT_ONCE);
    });
    token
}

/// The first Ctrl-C or SIGTERM (Ctrl-C only, if the SIGTERM handler cannot be installed).
pub(super) async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term_fut = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term_fut => {}
    }
}
