//! The Prometheus scrape endpoint: `GET /metrics` renders the OTel Prometheus bridge's registry
//! in the text exposition format. Runs as a task on the caller's tokio runtime; stops on drop.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};

use crate::error::TelemetryError;

pub(crate) struct PrometheusEndpoint {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PrometheusEndpoint {
    /// Bind `addr` now (so errors surface at startup) and serve on the current runtime.
    pub(crate) fn start(addr: SocketAddr, registry: prometheus::Registry) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let bind_err = |source| TelemetryError::Bind { addr: addr.to_string(), source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let local_addr = std_listener.local_addr().map_err(bind_err)?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?
        };
        let task = runtime.spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "prometheus endpoint: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let registry = registry.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let registry = registry.clone();
                        async move { Ok::<_, Infallible>(respond(&req, &registry)) }
                    });
                    if let Err(e) =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                    {
                        tracing::debug!(error = %e, "prometheus endpoint: connection ended with an error");
                    }
                });
            }
        });
        Ok(PrometheusEndpoint { local_addr, task })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for PrometheusEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(req: &Request<Incoming>, registry: &prometheus::Registry) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if req.method() != Method::GET || (path != "/metrics" && path != "/") {
        return plain(StatusCode::NOT_FOUND, "text/plain", Bytes::from_static(b"only GET /metrics\n"));
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => plain(StatusCode::OK, encoder.format_type(), Bytes::from(body)),
        Err(e) => {
            plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", Bytes::from(format!("encoding metrics: {e}\n")))
        }
    }
}

fn plain(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
