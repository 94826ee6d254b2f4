//! Vector-database operations: Pinecone, Qdrant, Weaviate and Chroma over REST (and GraphQL),
//! Pinecone, Qdrant and Weaviate over gRPC (messages decoded by descriptor), and pgvector in
//! SQL. Each recogniser returns the operation (`VectorOperation`), its OpenTelemetry `db.*`
//! attributes, and the texts of returned payloads/metadata/documents for the detectors
//! (retrieved documents are where indirect prompt injection arrives).

mod chroma;
mod errors;
mod payload;
mod pgvector;
mod pinecone;
mod qdrant;
pub(crate) mod values;
mod weaviate;

use chainwatch_schemas::VectorOperation;

use super::http_view::HttpView;

pub use payload::{MAX_PAYLOAD_TEXT_BYTES, MAX_PAYLOAD_TEXTS};
pub use pgvector::recognise_sql;

/// A recognised vector-database operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorRecognition {
    /// system (qdrant, pinecone, weaviate, chroma, postgresql), normalised operation (query,
    /// upsert, delete, fetch, update, count, list, describe, create_collection, ...),
    /// collection, namespace, top_k, dimension, filter present, results.
    pub op: VectorOperation,
    /// OpenTelemetry database attributes: `db.system.name`, `db.operation.name` (the vendor's
    /// own name of the call), `db.collection.name`, `db.namespace`, `db.response.returned_rows`,
    /// and on failure `db.response.status_code` (HTTP status or gRPC code name) and
    /// `error.type` (the database's own message).
    pub attributes: Vec<(String, String)>,
    /// Texts of returned (and, for upserts, stored) payloads, metadata and documents, by
    /// location (`qdrant.response.result[0].payload`), for PII and injection scanning. String
    /// leaves of the JSON, one a line, so escapes cannot hide characters from the detectors.
    pub payload_texts: Vec<(String, Vec<u8>)>,
}

/// Which vector database an HTTP or gRPC exchange talks to, and what it does, or `None`.
/// Recognised by path and body shape, so self-hosted servers on any host are seen.
pub fn recognise_http(view: &HttpView) -> Option<VectorRecognition> {
    let mut found = match view.grpc {
        Some(call) => pinecone::recognise_grpc(view, call)
            .or_else(|| qdrant::recognise_grpc(call))
            .or_else(|| weaviate::recognise_grpc(call)),
        None => qdrant::recognise_rest(view)
            .or_else(|| chroma::recognise_rest(view))
            .or_else(|| weaviate::recognise_rest(view))
            .or_else(|| pinecone::recognise_rest(view)),
    }?;
    found.attributes.extend(errors::error_attributes(view));
    Some(found)
}

/// What a recogniser found, before it becomes a `VectorRecognition`.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub system: &'static str,
    /// Normalised operation.
    pub operation: &'static str,
    /// The vendor's own name of the call (`points/search`, `Query`, `Get`).
    pub vendor_operation: String,
    pub collection: Option<String>,
    pub namespace: Option<String>,
    pub top_k: Option<i64>,
    pub dimension: Option<i32>,
    pub filter_present: bool,
    pub results: Option<i64>,
    pub payloads: payload::PayloadTexts,
}

impl Draft {
    pub fn new(
        system: &'static str,
        operation: &'static str,
        vendor_operation: impl Into<String>,
    ) -> Self {
        Self {
            system,
            operation,
            vendor_operation: vendor_operation.into(),
            ..Self::default()
        }
    }

    pub fn finish(self) -> VectorRecognition {
        let mut attributes = vec![
            ("db.system.name".to_string(), self.system.to_string()),
            (
                "db.operation.name".to_string(),
                self.vendor_operation.clone(),
            ),
        ];
        if let Some(c) = &self.collection {
            attributes.push(("db.collection.name".into(), c.clone()));
        }
        if let Some(n) = &self.namespace {
            attributes.push(("db.namespace".into(), n.clone()));
        }
        if let Some(r) = self.results {
            attributes.push(("db.response.returned_rows".into(), r.to_string()));
        }
        if self.payloads.truncated {
            attributes.push((
                "chainwatch.vector.payload_texts_truncated".into(),
                "true".into(),
            ));
        }
        VectorRecognition {
            op: VectorOperation {
                system: self.system.to_string(),
                operation: self.operation.to_string(),
                collection: self.collection,
                namespace: self.namespace,
                top_k: self.top_k,
                dimension: self.dimension,
                filter_present: self.filter_present,
                results: self.results,
            },
            attributes,
            payload_texts: self.payloads.texts,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
