//! Checks that the committed descriptor sets in `protos/descriptors/` are exactly what the
//! `.proto` sources in `protos/` compile to (with `protox`, a pure-Rust protobuf compiler), and
//! regenerates them when `CHAINWATCH_REGENERATE_DESCRIPTORS=1` (see `protos/regenerate.sh`).

use std::path::{Path, PathBuf};

use super::registry::{DescriptorRegistry, builtin_set_names};

fn protos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protos")
}

/// Compile `files` (names relative to `includes`) with their imports into FileDescriptorSet bytes.
fn compile(includes: &[&str], files: &[&str]) -> Vec<u8> {
    let includes: Vec<PathBuf> = includes.iter().map(|dir| protos_dir().join(dir)).collect();
    let mut compiler = match protox::Compiler::new(includes) {
        Ok(compiler) => compiler,
        Err(err) => panic!("protox include paths: {err:?}"),
    };
    compiler.include_imports(true).include_source_info(false);
    if let Err(err) = compiler.open_files(files) {
        panic!("protox failed on {files:?}: {err:?}");
    }
    compiler.encode_file_descriptor_set()
}

fn proto_files_in(dir: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(protos_dir().join(dir).join(prefix))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".proto"))
                .map(|name| {
                    if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}/{name}")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What every built-in set must contain, compiled from the sources now.
fn expected_sets() -> Vec<(&'static str, Vec<u8>)> {
    let qdrant_files = proto_files_in("qdrant", "");
    let qdrant: Vec<&str> = qdrant_files.iter().map(String::as_str).collect();
    let weaviate_files = proto_files_in("weaviate", "v1");
    let weaviate: Vec<&str> = weaviate_files.iter().map(String::as_str).collect();
    // Pinecone 2026-04 ships only as the exact descriptor from go-pinecone's generated code (a
    // FileDescriptorSet holding one file): its imports are compiled from source and the exact
    // bytes appended unchanged (concatenated sets merge their repeated `file` field).
    let pinecone_2026_deps = compile(
        &["googleapis"],
        &[
            "google/protobuf/struct.proto",
            "google/api/annotations.proto",
            "google/api/field_behavior.proto",
        ],
    );
    let exact =
        std::fs::read(protos_dir().join("pinecone-2026-04/db_data_2026-04.descriptor.binpb"))
            .unwrap_or_else(|err| panic!("pinecone 2026-04 descriptor: {err}"));
    vec![
        ("qdrant", compile(&["qdrant"], &qdrant)),
        ("weaviate", compile(&["weaviate"], &weaviate)),
        ("pinecone-2026-04", [pinecone_2026_deps, exact].concat()),
        (
            "pinecone-2024-03",
            compile(
                &["pinecone-2024-03", "googleapis"],
                &["vector_service.proto"],
            ),
        ),
        (
            "google-rpc",
            compile(
                &["googleapis"],
                &[
                    "google/rpc/status.proto",
                    "google/rpc/error_details.proto",
                    "google/rpc/code.proto",
                ],
            ),
        ),
    ]
}

#[test]
fn descriptor_sets_match_sources() {
    let regenerate = std::env::var("CHAINWATCH_REGENERATE_DESCRIPTORS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, bytes) in expected_sets() {
        let path = protos_dir()
            .join("descriptors")
            .join(format!("{name}.binpb"));
        if regenerate {
            if let Err(err) = std::fs::write(&path, &bytes) {
                panic!("write {}: {err}", path.display());
            }
        } else if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale descriptor sets {stale:?}: run parser-workers/protos/regenerate.sh"
    );
}

#[test]
fn builtin_registry_loads_every_set() {
    let registry = DescriptorRegistry::builtin();
    assert_eq!(registry.builtin_errors(), &[] as &[String]);
    assert_eq!(
        registry.set_names(),
        builtin_set_names().collect::<Vec<_>>()
    );
    for (service, method, set, input, output) in [
        (
            "qdrant.Points",
            "Search",
            "qdrant",
            "qdrant.SearchPoints",
            "qdrant.SearchResponse",
        ),
        (
            "qdrant.Collections",
            "List",
            "qdrant",
            "qdrant.ListCollectionsRequest",
            "qdrant.ListCollectionsResponse",
        ),
        (
            "qdrant.Qdrant",
            "HealthCheck",
            "qdrant",
            "qdrant.HealthCheckRequest",
            "qdrant.HealthCheckReply",
        ),
        (
            "weaviate.v1.Weaviate",
            "Search",
            "weaviate",
            "weaviate.v1.SearchRequest",
            "weaviate.v1.SearchReply",
        ),
        (
            "weaviate.v1.Weaviate",
            "BatchObjects",
            "weaviate",
            "weaviate.v1.BatchObjectsRequest",
            "weaviate.v1.BatchObjectsReply",
        ),
        (
            "VectorService",
            "Query",
            "pinecone-2026-04",
            "QueryRequest",
            "QueryResponse",
        ),
        (
            "VectorService",
            "FetchByMetadata",
            "pinecone-2026-04",
            "FetchByMetadataRequest",
            "FetchByMetadataResponse",
        ),
    ] {
        let found = registry.lookup_method(service, method);
        let Some(found) = found else {
            panic!("{service}/{method} not found")
        };
        assert_eq!(found.set_name, set, "{service}/{method}");
        assert_eq!(found.input().full_name(), input);
        assert_eq!(found.output().full_name(), output);
    }
    assert!(
        registry
            .lookup_method("qdrant.Points", "NoSuchMethod")
            .is_none()
    );
    assert!(
        registry
            .lookup_method("agent.Synchronizer", "Sync")
            .is_none()
    );
    // The 2024-03 revision is still reachable by name.
    let old = registry
        .pool("pinecone-2024-03")
        .and_then(|pool| pool.get_service_by_name("VectorService"));
    assert_eq!(old.map(|service| service.methods().len()), Some(7));
}

#[test]
fn user_descriptor_sets_are_searched_first_and_errors_are_named() {
    let mut registry = DescriptorRegistry::builtin();
    let qdrant = compile(&["qdrant"], &["qdrant.proto"]);
    assert!(registry.add_descriptor_set("mine", &qdrant).is_ok());
    assert_eq!(
        registry
            .lookup_method("qdrant.Qdrant", "HealthCheck")
            .map(|m| m.set_name),
        Some("mine".into())
    );
    assert!(matches!(
        registry.add_descriptor_set("mine", &qdrant),
        Err(super::error::DescriptorSetError::DuplicateName(_))
    ));
    let bad = registry.add_descriptor_set("garbage", b"\x0a\x05abc");
    assert!(
        matches!(bad, Err(super::error::DescriptorSetError::Invalid { .. })),
        "{bad:?}"
    );
    let dir = std::env::temp_dir().join(format!("cw-grpc-registry-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("weaviate.binpb");
    let _ = std::fs::write(&file, compile(&["weaviate"], &["v1/weaviate.proto"]));
    let added = registry.add_descriptor_set_file("weaviate-user", &file);
    assert!(added.is_ok(), "{added:?}");
    let missing = registry.add_descriptor_set_file("nope", &dir.join("missing.binpb"));
    assert!(matches!(
        missing,
        Err(super::error::DescriptorSetError::Read { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
