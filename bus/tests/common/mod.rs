//! Shared by the bus's test binaries: the conformance suite every bus implementation passes.

#![allow(dead_code)]

pub mod conformance;
