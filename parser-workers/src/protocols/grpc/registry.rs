//! `DescriptorRegistry`: named protobuf descriptor sets (built-in Qdrant, Weaviate, Pinecone,
//! plus any a user adds from files) and the lookup from a gRPC method to its message types.
//!
//! Each set lives in its own `DescriptorPool`, so two sets may define the same names (both
//! Pinecone revisions declare a top-level `VectorService`). Lookup walks the sets in the order
//! they were added, user sets first, and the first set that knows the method wins.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor};

use super::error::DescriptorSetError;

/// Largest descriptor-set file accepted from disk.
pub const MAX_DESCRIPTOR_SET_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The built-in sets: (name, FileDescriptorSet bytes). Generated from `protos/` by
/// `protos/regenerate.sh`; the test `descriptor_sets_match_sources` fails when they are stale.
const BUILTIN_SETS: &[(&str, &[u8])] = &[
    (
        "qdrant",
        include_bytes!("../../../protos/descriptors/qdrant.binpb"),
    ),
    (
        "weaviate",
        include_bytes!("../../../protos/descriptors/weaviate.binpb"),
    ),
    (
        "pinecone-2026-04",
        include_bytes!("../../../protos/descriptors/pinecone-2026-04.binpb"),
    ),
    (
        "pinecone-2024-03",
        include_bytes!("../../../protos/descriptors/pinecone-2024-03.binpb"),
    ),
    (
        GOOGLE_RPC_SET,
        include_bytes!("../../../protos/descriptors/google-rpc.binpb"),
    ),
];

/// The built-in set with `google.rpc.Status` and the standard error details (no services),
/// used for `grpc-status-details-bin`.
pub const GOOGLE_RPC_SET: &str = "google-rpc";

/// The names of the built-in descriptor sets, in lookup order.
pub fn builtin_set_names() -> impl Iterator<Item = &'static str> {
    BUILTIN_SETS.iter().map(|(name, _)| *name)
}

/// One named descriptor set.
#[derive(Debug, Clone)]
struct NamedPool {
    name: String,
    pool: DescriptorPool,
}

/// A gRPC method found in a registry: which set knows it and its request/response types.
#[derive(Debug, Clone)]
pub struct MethodMatch {
    /// Name of the descriptor set that defined the method ("qdrant", or a user's name).
    pub set_name: String,
    /// The method itself (its service, streaming flags, input and output types).
    pub method: MethodDescriptor,
}

impl MethodMatch {
    /// Type of the messages the client sends.
    pub fn input(&self) -> MessageDescriptor {
        self.method.input()
    }
    /// Type of the messages the server sends.
    pub fn output(&self) -> MessageDescriptor {
        self.method.output()
    }
}

/// Named descriptor sets that map gRPC methods to protobuf message types.
#[derive(Debug, Clone, Default)]
pub struct DescriptorRegistry {
    /// Lookup order: user sets (newest first), then built-in sets.
    user_sets: Vec<NamedPool>,
    builtin_sets: Vec<NamedPool>,
    /// Built-in sets that failed to load (a build defect; tests keep this empty).
    builtin_errors: Vec<String>,
}

impl DescriptorRegistry {
    /// A registry that knows no service: every message goes to the schema-less walk.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry with the built-in Qdrant, Weaviate and Pinecone (2026-04 and 2024-03) sets,
    /// plus `google-rpc` (rich error details).
    /// The embedded sets are decoded once per process; later calls share them (pools are
    /// reference-counted), so this is cheap to call per worker.
    pub fn builtin() -> Self {
        static BUILTIN: OnceLock<DescriptorRegistry> = OnceLock::new();
        BUILTIN.get_or_init(Self::load_builtin).clone()
    }

    fn load_builtin() -> Self {
        let mut registry = Self::default();
        for (name, bytes) in BUILTIN_SETS {
            match DescriptorPool::decode(*bytes) {
                Ok(pool) => registry.builtin_sets.push(NamedPool {
                    name: (*name).to_string(),
                    pool,
                }),
                Err(err) => registry.builtin_errors.push(format!("{name}: {err}")),
            }
        }
        registry
    }

    /// Built-in sets that failed to load, with the reason (empty unless the build is broken).
    pub fn builtin_errors(&self) -> &[String] {
        &self.builtin_errors
    }

    /// Names of all sets, in lookup order.
    pub fn set_names(&self) -> Vec<&str> {
        self.user_sets
            .iter()
            .chain(&self.builtin_sets)
            .map(|set| set.name.as_str())
            .collect()
    }

    /// Add a serialized `google.protobuf.FileDescriptorSet` (what `protoc --include_imports
    /// --descriptor_set_out`, `buf build -o x.binpb` or `protox` write) under `name`.
    /// User sets are searched before the built-in ones, newest first.
    pub fn add_descriptor_set(
        &mut self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), DescriptorSetError> {
        if self.set_names().contains(&name) {
            return Err(DescriptorSetError::DuplicateName(name.to_string()));
        }
        let pool = DescriptorPool::decode(bytes).map_err(|err| DescriptorSetError::Invalid {
            name: name.to_string(),
            reason: err.to_string(),
        })?;
        self.user_sets.insert(
            0,
            NamedPool {
                name: name.to_string(),
                pool,
            },
        );
        Ok(())
    }

    /// Read a descriptor-set file (at most `MAX_DESCRIPTOR_SET_FILE_BYTES`) and add it under
    /// `name` (see `add_descriptor_set`).
    pub fn add_descriptor_set_file(
        &mut self,
        name: &str,
        path: &Path,
    ) -> Result<(), DescriptorSetError> {
        let shown = path.display().to_string();
        let read_err = |source| DescriptorSetError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_DESCRIPTOR_SET_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let size = bytes.len() as u64;
        if size > MAX_DESCRIPTOR_SET_FILE_BYTES {
            return Err(DescriptorSetError::TooLarge {
                path: shown,
                size,
                cap: MAX_DESCRIPTOR_SET_FILE_BYTES,
            });
        }
        self.add_descriptor_set(name, &bytes)
    }

    /// The descriptor pool of the set called `name`.
    pub fn pool(&self, name: &str) -> Option<&DescriptorPool> {
        self.user_sets
            .iter()
            .chain(&self.builtin_sets)
            .find(|set| set.name == name)
            .map(|set| &set.pool)
    }

    /// Find `service` (full name, e.g. `qdrant.Points`) / `method` (e.g. `Search`).
    pub fn lookup_method(&self, service: &str, method: &str) -> Option<MethodMatch> {
        self.user_sets
            .iter()
            .chain(&self.builtin_sets)
            .find_map(|set| {
                let found = set
                    .pool
                    .get_service_by_name(service)?
                    .methods()
                    .find(|m| m.name() == method)?;
                Some(MethodMatch {
                    set_name: set.name.clone(),
                    method: found,
                })
            })
    }
}
