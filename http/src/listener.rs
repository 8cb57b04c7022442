//! The accept loop, on hyper's HTTP/1 connection builder rather than `axum::serve`, so the
//! listener defends itself: a header read timeout (which also closes idle keep-alive
//! connections: hyper starts it as soon as a connection waits for its next request), a cap on
//! connections served at once (beyond it the listener stops accepting and the kernel's backlog
//! holds the rest), and graceful shutdown that lets requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Serve `listener` until `shutdown` resolves, then wait (at most `drain`) for open
/// connections to finish their requests. `make` builds the service of one connection.
pub async fn serve<M, S>(
    listener: TcpListener,
    name: &'static str,
    limits: Limits,
    make: M,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    M: Fn(SocketAddr) -> S,
    S: Service<axum::http::Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper answers 431 itself (no envelope) past its buffer: keep that far above the
        // edge's own limit (`edge::MAX_HEADER_BYTES`), which answers with the envelope.
        .max_buf_size(1 << 20)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = metrics::gauge!("reauth_http_connections_open", "listener" => name);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // Take a slot before accepting: at the cap, connections wait in the backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning or exiting.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = make(peer);
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut svc = svc.clone();
            svc.call(req.map(Body::new))
        });
        let conn = http.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            // Errors here are the client's (reset, header timeout, malformed request): hyper
            // has already answered what could be answered.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            open.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "connections still open after the drain timeout"
        );
    }
}
