#!/bin/sh
# Regenerate protos/descriptors/*.binpb from the .proto sources in this folder with protox
# (pure Rust, no protoc). The same test, run without the variable, fails when they are stale.
set -eu
cd "$(dirname "$0")/../.."
CHAINWATCH_REGENERATE_DESCRIPTORS=1 cargo test -p chainwatch-parser-workers --lib \
    grpc::tests_descriptor_sets::descriptor_sets_match_sources
cargo test -p chainwatch-parser-workers --lib grpc::tests_descriptor_sets
