//! Records going out to the bus and coming back from it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::BusError;

/// A record header: Kafka headers, e.g. `cw.reason` on dead letters.
pub type Header = (String, Vec<u8>);

/// A record to publish. The key picks the partition (Java-compatible murmur2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
}

impl OutRecord {
    pub fn new(topic: impl Into<String>, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        OutRecord { topic: topic.into(), key: key.into(), value: value.into(), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A sent record waiting for the bus's acknowledgement.
pub struct Pending(pub(crate) BoxFuture<'static, Result<Delivered, BusError>>);

impl Pending {
    /// Already acknowledged (the in-memory bus appends synchronously).
    pub fn ready(result: Result<Delivered, BusError>) -> Self {
        Pending(Box::pin(std::future::ready(result)))
    }
}

impl Future for Pending {
    type Output = Result<Delivered, BusError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch (producer or log-append time).
    pub timestamp_ms: i64,
}

impl Record {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}
