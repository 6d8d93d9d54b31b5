//! Serving a router on a listener: HTTP/1.1 only, with a deadline for request headers.
//!
//! `axum::serve` never times a connection out, so a client that sends its headers a byte at a
//! time (slowloris) held a connection and its task forever. Here hyper closes a connection whose
//! request head has not arrived within [`HEADER_TIMEOUT`]; the body has its own deadline in the
//! handlers ([`crate::http::Limits::body_timeout`]). HTTP/1.1 is all the API server's service
//! proxy, the CLI and Prometheus speak, and the header deadline applies to every request.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish after `shutdown` resolves.
const DRAIN: Duration = Duration::from_secs(5);

/// Serve `router` on `listener` until `shutdown` resolves, then drain open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("connections still open after the drain period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(header_timeout: Duration) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/healthz", get(|| async { "ok\n" }));
        tokio::spawn(serve(
            listener,
            router,
            header_timeout,
            std::future::pending(),
        ));
        addr
    }

    #[tokio::test]
    async fn complete_requests_are_served() {
        let addr = start(Duration::from_secs(30)).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }

    #[tokio::test]
    async fn slow_headers_are_disconnected() {
        let addr = start(Duration::from_millis(300)).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Half a request head, then nothing: the server must close the connection.
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        // Returns only once the server has closed its side (EOF or reset); never a 200. The
        // outer bound only keeps a regression from hanging the suite (200 × the deadline).
        let closed = tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut out)).await;
        assert!(
            closed.is_ok(),
            "the server kept a connection with half a request head open"
        );
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains(" 200 "), "{text}");
        // The socket is closed: writing the rest of the request cannot get an answer.
        let _ = c.write_all(b"\r\n").await;
        let mut again = Vec::new();
        let n = c.read_to_end(&mut again).await.unwrap_or(0);
        assert_eq!(n, 0, "no answer on a closed connection");
    }
}
