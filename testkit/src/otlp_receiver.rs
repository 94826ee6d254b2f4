//! An OTLP/HTTP receiver on a free loopback port, standing in for an OpenTelemetry collector's
//! otlphttp receiver: it accepts protobuf POSTs to `/v1/traces` and `/v1/metrics`, answers
//! 200, and keeps the bodies; the test decodes them with the opentelemetry-proto messages.
//! It runs on its own thread and runtime, so sync tests (spawning the binary) and async tests
//! alike can use it. Stopped when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// The OTLP/HTTP binary content type; anything else is answered 415 and counted.
const PROTOBUF: &str = "application/x-protobuf";

#[derive(Default)]
struct Received {
    /// (path, body) of every accepted POST, in arrival order.
    posts: Vec<(String, Bytes)>,
    /// Requests refused (wrong content type), as "path content-type".
    refused: Vec<String>,
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Listen on 127.0.0.1 (a free port); returns once the port is bound.
    pub fn start() -> OtlpReceiver {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let received: Arc<Mutex<Received>> = Arc::default();
        let store = Arc::clone(&received);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("receiver runtime: {e}"));
                rt.block_on(serve(listener, store, stopped));
            })
            .unwrap_or_else(|e| panic!("receiver thread: {e}"));
        OtlpReceiver { addr, received, stop: Some(stop), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client is configured with (`[metrics].otlp_endpoint`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bodies posted to `path` (e.g. `/v1/traces`), in arrival order.
    pub fn bodies(&self, path: &str) -> Vec<Bytes> {
        self.lock().posts.iter().filter(|(p, _)| p == path).map(|(_, b)| b.clone()).collect()
    }

    /// Requests refused for a content type other than OTLP/HTTP binary.
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }

    /// Every trace export received, decoded (panics on a body that is not one).
    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.bodies("/v1/traces")
            .into_iter()
            .map(|b| {
                ExportTraceServiceRequest::decode(b).unwrap_or_else(|e| panic!("not an ExportTraceServiceRequest: {e}"))
            })
            .collect()
    }

    /// Every metrics export received, decoded (panics on a body that is not one).
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.bodies("/v1/metrics")
            .into_iter()
            .map(|b| {
                ExportMetricsServiceRequest::decode(b)
                    .unwrap_or_else(|e| panic!("not an ExportMetricsServiceRequest: {e}"))
            })
            .collect()
    }

    /// Wait until something was posted to `path`; false after `timeout`.
    pub fn wait_for(&self, path: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.bodies(path).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        !self.bodies(path).is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    store: Arc<Mutex<Received>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let store = Arc::clone(&store);
                async move { Ok::<_, Infallible>(handle(req, &store).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(req: hyper::Request<hyper::body::Incoming>, store: &Mutex<Received>) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    if content_type == PROTOBUF {
        store.posts.push((path, body));
        if let Ok(v) = PROTOBUF.parse() {
            resp.headers_mut().insert("content-type", v);
        }
    } else {
        store.refused.push(format!("{path} {content_type}"));
        *resp.status_mut() = hyper::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    resp
}
