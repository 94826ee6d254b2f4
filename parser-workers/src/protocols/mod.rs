//! Wire protocols, one folder each. Every protocol follows the shape in `parsed`.

pub mod grpc;
pub mod http1;
pub mod http2;
pub mod parsed;
pub mod postgres;
pub mod tls;

pub use parsed::{Direction, FrameParser, Parsed, Stitcher};
