//! The shape every wire protocol shares: a push parser that says what it saw in the bytes it
//! was shown, and a stitcher that turns frames of both directions into exchanges.
//!
//! Protocols never see segments, gaps or the bus: the connection FSM owns the buffers and caps,
//! detects the protocol once, and drives one parser per direction and one stitcher.

/// Which way bytes travel on a connection, from the protocol's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the side that opened the connection (the client) to the server.
    ClientToServer,
    /// From the server back to the client.
    ServerToClient,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}

/// What a parser says about the bytes it was shown (one direction of one connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<F> {
    /// One whole frame; the caller drops `consumed` bytes from the front of its buffer.
    Frame { frame: F, consumed: usize },
    /// Nothing wrong so far; call again when more bytes arrived.
    NeedMore,
    /// Not this protocol here; drop `skip` bytes (at least 1) and try again to resynchronise.
    Invalid { skip: usize },
}

/// A push parser over borrowed bytes: it never copies more than a frame must keep.
pub trait FrameParser {
    type Frame;
    /// Parse the front of `buf`. Must never panic, whatever `buf` holds.
    fn parse(&mut self, buf: &[u8]) -> Parsed<Self::Frame>;
}

/// Pairs frames of both directions into exchanges (request + response, or one-way messages).
pub trait Stitcher {
    type Frame;
    type Exchange;
    /// Feed one frame; get back the exchanges it completed.
    fn push(&mut self, dir: Direction, frame: Self::Frame, ts_ns: u64) -> Vec<Self::Exchange>;
}
