//! `GET /metrics` on a loopback address (issue 17), served by `hyper` (HTTP/1.1).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::SignalError;

/// Whether `listen` (`host:port`) is a loopback address (127.0.0.0/8, `::1`, `localhost`):
/// metrics name sinks, artifacts and rules, so they are not served beyond the host unless
/// the operator says so (`[metrics] allow_non_loopback`).
pub fn is_loopback_listen(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| host == "localhost" && port.parse::<u16>().is_ok())
}

/// Serves `GET /metrics` (the text `render` returns, `Content-Type: text/plain;
/// version=0.0.4`) on `listener` until `shutdown` completes; any other path is 404, any other
/// method 405. Each request calls `render`, so the answer is the state at that moment.
///
/// # Errors
/// [`SignalError::Serve`] when accepting connections fails.
pub async fn serve_metrics(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SignalError> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted.map_err(|e| SignalError::Serve(e.to_string()))?,
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let render = Arc::clone(&render);
                async move { Ok::<_, Infallible>(answer(&req, &*render)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer<B>(
    req: &Request<B>,
    render: &(dyn Fn() -> String + Send + Sync),
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "wst serves /metrics only\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_listen_addresses_pass() {
        assert!(is_loopback_listen("127.0.0.1:9187"));
        assert!(is_loopback_listen("[::1]:9187"));
        assert!(is_loopback_listen("localhost:9187"));
        assert!(!is_loopback_listen("0.0.0.0:9187"));
        assert!(!is_loopback_listen("192.0.2.10:9187"));
        assert!(!is_loopback_listen("metrics.example:9187"));
        assert!(!is_loopback_listen("127.0.0.1"));
    }
}
