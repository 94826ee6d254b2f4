//! Shared by the bus's test binaries: the conformance suite every bus implementation passes.

#![allow(dead_code)]

pub mod conformance;

/// Tests that run a broker and 100,000 records take the machine's two cores: one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
