//! The methods a server serves, read from the descriptor sets it registers for reflection: which
//! calls are streams (the stream limit and the open-streams gauge need to know before the handler
//! runs), and the metric labels of each.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use prost_types::FileDescriptorSet;

use crate::metrics::MethodLabels;

/// One method of the server.
#[derive(Debug, PartialEq)]
pub struct Method {
    pub labels: MethodLabels,
    /// Whether the response is a stream (server or bidirectional streaming): such a call may stay
    /// open indefinitely.
    pub streams_responses: bool,
}

/// Methods by request path (`/package.Service/Method`).
#[derive(Debug)]
pub struct Methods {
    by_path: HashMap<String, Arc<Method>>,
    /// What a path that is no method of the server counts as: one set of labels for all of them,
    /// so that made-up paths cannot grow the number of metric series.
    unknown: Arc<Method>,
}

/// A descriptor set that does not decode: a build problem, not an input one.
#[derive(Debug, thiserror::Error)]
#[error("decoding a file descriptor set: {0}")]
pub struct DescriptorError(#[from] prost::DecodeError);

impl Methods {
    /// The methods of every service in `descriptor_sets` (encoded `FileDescriptorSet`s).
    pub fn from_descriptor_sets(descriptor_sets: &[&[u8]]) -> Result<Methods, DescriptorError> {
        let mut by_path = HashMap::new();
        for encoded in descriptor_sets {
            for file in FileDescriptorSet::decode(*encoded)?.file {
                let package = file.package();
                for service in &file.service {
                    let service_name = match package {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    for method in &service.method {
                        let (client, server) =
                            (method.client_streaming(), method.server_streaming());
                        let labels = MethodLabels {
                            grpc_service: service_name.clone(),
                            grpc_method: method.name().to_owned(),
                            grpc_type: match (client, server) {
                                (false, false) => "unary",
                                (false, true) => "server_stream",
                                (true, false) => "client_stream",
                                (true, true) => "bidi_stream",
                            },
                        };
                        let path = format!("/{service_name}/{}", method.name());
                        let method = Method {
                            labels,
                            streams_responses: server,
                        };
                        by_path.insert(path, Arc::new(method));
                    }
                }
            }
        }
        let unknown = Arc::new(Method {
            labels: MethodLabels {
                grpc_service: "unknown".to_owned(),
                grpc_method: "unknown".to_owned(),
                grpc_type: "unary",
            },
            streams_responses: false,
        });
        Ok(Methods { by_path, unknown })
    }

    /// Every method of the server.
    pub fn iter(&self) -> impl Iterator<Item = &Method> {
        self.by_path.values().map(|method| method.as_ref())
    }

    /// The method a request path calls; the shared "unknown" method for any other path.
    pub fn get(&self, path: &str) -> Arc<Method> {
        self.by_path.get(path).unwrap_or(&self.unknown).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_read_from_the_descriptors() {
        let methods = Methods::from_descriptor_sets(&[
            testcluster_api::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ])
        .expect("decodes");
        let watch = methods.get("/testcluster.v1.TestClusterService/WatchTestCluster");
        assert_eq!(
            watch.labels.grpc_service,
            "testcluster.v1.TestClusterService"
        );
        assert_eq!(watch.labels.grpc_method, "WatchTestCluster");
        assert_eq!(watch.labels.grpc_type, "server_stream");
        assert!(watch.streams_responses);
        let check = methods.get("/grpc.health.v1.Health/Check");
        assert_eq!(check.labels.grpc_type, "unary");
        assert!(!check.streams_responses);
        let made_up = methods.get("/evil.Service/Method123");
        assert_eq!(made_up.labels.grpc_service, "unknown");
        assert_eq!(made_up.labels.grpc_method, "unknown");
    }
}
