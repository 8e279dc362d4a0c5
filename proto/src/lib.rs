//! Generated protobuf types and gRPC stubs, one module per package.
#![allow(unreachable_pub, missing_debug_implementations, rust_2018_idioms)]

pub use prost;
pub use prost_types;
pub use tonic;

/// `whatsapp.*` packages.
pub mod whatsapp {
    /// `whatsapp.ingest.*`
    pub mod ingest {
        /// `whatsapp.ingest.v1`: the ingest API.
        pub mod v1 {
            tonic::include_proto!("whatsapp.ingest.v1");
        }
    }
    /// `whatsapp.jobs.*`
    pub mod jobs {
        /// `whatsapp.jobs.v1`: the worker job stream.
        pub mod v1 {
            tonic::include_proto!("whatsapp.jobs.v1");
        }
    }
}

pub use whatsapp::ingest::v1 as ingest;
pub use whatsapp::jobs::v1 as jobs;

/// Encoded `FileDescriptorSet` of every package, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("whatsapp_descriptor");
