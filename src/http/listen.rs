//! The accept loop. Not `axum::serve`: that installs no timer in hyper, so a client that
//! sends half a request head is never timed out (slowloris). Here every connection is served
//! by hyper's HTTP/1.1 builder with a timer and a header read timeout, which also closes idle
//! keep-alive connections, and graceful shutdown is ours: stop accepting, let each connection
//! finish the request it is in, then close it, within a bound.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy in front
//! terminates, and hyper's protocol sniffing for cleartext HTTP/2 waits for bytes without a
//! timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

pub struct Options {
    /// How long a client may take to send a request head (and stay idle between requests).
    pub header_timeout: Duration,
    /// How long shutdown waits for connections to finish before it stops waiting.
    pub drain: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves; then calls `on_shutdown` (which ends
/// the streams) and waits up to `drain` for every connection to close.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce(),
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
    // Each connection holds a receiver; when all are dropped, every connection has closed.
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            // Finish the request in flight (a command is answered after its commit), then close.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
            drop(stopping);
        });
    }
    drop(listener);
    on_shutdown();
    stop.send_replace(true);
    drop(stopping);
    if tokio::time::timeout(options.drain, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_s = options.drain.as_secs_f64(),
            "some connections were still open at the end of the shutdown; closing them"
        );
    }
    Ok(())
}

/// Accepting fails for reasons of the moment (a client gave up, no file descriptors left);
/// none of them may stop the server.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; retrying");
    // Out of file descriptors: give streams a moment to end instead of spinning.
    tokio::time::sleep(Duration::from_millis(50)).await;
}
