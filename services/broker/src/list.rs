//! `ListTestClusters` pages from the informer's store, bounded by count and by bytes.
//!
//! Items come sorted by namespace and name; a page token is the last item's `namespace/name`, so a
//! page carries on after it whatever was created or deleted meanwhile (no item appears twice, and
//! one created before the cursor in the meantime is not shown; an API server's continue token is no
//! more consistent once its snapshot expires). A page stops at `page_size` items or before its
//! encoding would pass [`MAX_PAGE_BYTES`], well under gRPC's default 4 MiB message limit that
//! clients enforce, so large objects (a 100 KB description each) page instead of failing.

use std::sync::Arc;

use kube::core::SelectorExt as _;
use prost::Message as _;
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use tonic::Status;
use tonic_types::FieldViolation;

use crate::selector;

/// Items per page when the caller leaves it to the server, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;
/// The most a page's encoding may take (a single larger item still goes alone on its page).
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// What a list request asks for, checked.
pub struct Query {
    namespace: String,
    selector: kube::core::Selector,
    page_size: usize,
    after: Option<(String, String)>,
}

impl Query {
    /// Checks the request's paging and selector fields (the namespace is checked by the caller).
    pub fn new(request: &api::ListTestClustersRequest) -> Result<Self, Status> {
        let page_size = match usize::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
            Err(_) => return Err(violation("page_size", "must not be negative".to_owned())),
        };
        let selector = selector::parse(&request.label_selector)
            .map_err(|message| violation("label_selector", message))?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(
                token
                    .split_once('/')
                    .map(|(namespace, name)| (namespace.to_owned(), name.to_owned()))
                    .ok_or_else(|| {
                        violation(
                            "page_token",
                            "not a token from a previous ListTestClusters answer".to_owned(),
                        )
                    })?,
            ),
        };
        Ok(Query {
            namespace: request.namespace.clone(),
            selector,
            page_size,
            after,
        })
    }

    /// One page of `objects` (in any order).
    pub fn page(&self, objects: Vec<Arc<TestClusterGKE>>) -> api::ListTestClustersResponse {
        let mut selected: Vec<(&str, &str, &TestClusterGKE)> = objects
            .iter()
            .filter_map(|object| {
                let namespace = object.metadata.namespace.as_deref()?;
                let name = object.metadata.name.as_deref()?;
                Some((namespace, name, &**object))
            })
            .filter(|(namespace, name, object)| {
                (self.namespace.is_empty() || *namespace == self.namespace)
                    && self
                        .after
                        .as_ref()
                        .is_none_or(|(after_namespace, after_name)| {
                            (*namespace, *name) > (after_namespace.as_str(), after_name.as_str())
                        })
                    && self.selector.matches(
                        object
                            .metadata
                            .labels
                            .as_ref()
                            .unwrap_or(&Default::default()),
                    )
            })
            .collect();
        selected.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        let mut page = api::ListTestClustersResponse::default();
        let mut bytes = 0;
        let mut last = None;
        for (at, (namespace, name, object)) in selected.iter().enumerate() {
            if at == self.page_size {
                break;
            }
            let item = to_test_cluster(object);
            // The item's field tag, its length prefix and the item itself; room is kept for the
            // next-page token, whose size is bounded by the names in it.
            let size = 1 + prost::length_delimiter_len(item.encoded_len()) + item.encoded_len();
            if !page.test_clusters.is_empty() && bytes + size > MAX_PAGE_BYTES - TOKEN_ROOM {
                break;
            }
            bytes += size;
            page.test_clusters.push(item);
            last = Some((*namespace, *name));
        }
        if page.test_clusters.len() < selected.len()
            && let Some((namespace, name)) = last
        {
            page.next_page_token = format!("{namespace}/{name}");
        }
        page
    }
}

/// Room for the next-page token: two Kubernetes names (at most 253 bytes each), `/`, tag, length.
const TOKEN_ROOM: usize = 512 + 8;

fn violation(field: &str, message: String) -> Status {
    invalid_argument(vec![FieldViolation::new(field, message)])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn object(namespace: &str, name: &str, description_bytes: usize) -> Arc<TestClusterGKE> {
        let mut object = TestClusterGKE::new(name, Default::default());
        object.metadata.namespace = Some(namespace.to_owned());
        object.metadata.labels = Some(BTreeMap::from([(
            "team".to_owned(),
            if name.ends_with('0') { "net" } else { "ci" }.to_owned(),
        )]));
        object.metadata.annotations = Some(BTreeMap::from([(
            "ci.cilium.io/cluster-description".to_owned(),
            "d".repeat(description_bytes),
        )]));
        Arc::new(object)
    }

    fn query(namespace: &str, selector: &str, page_size: i32, token: &str) -> Query {
        Query::new(&api::ListTestClustersRequest {
            namespace: namespace.to_owned(),
            label_selector: selector.to_owned(),
            page_size,
            page_token: token.to_owned(),
        })
        .expect("valid")
    }

    fn names(page: &api::ListTestClustersResponse) -> Vec<String> {
        page.test_clusters
            .iter()
            .map(|c| format!("{}/{}", c.namespace, c.name))
            .collect()
    }

    #[test]
    fn pages_by_count_in_name_order_and_filters() {
        let objects: Vec<_> = ["b/x1", "a/x2", "a/x10", "b/x0"]
            .iter()
            .map(|n| {
                let (namespace, name) = n.split_once('/').expect("ns/name");
                object(namespace, name, 0)
            })
            .collect();
        let first = query("", "", 2, "").page(objects.clone());
        assert_eq!(names(&first), ["a/x10", "a/x2"]);
        assert_eq!(first.next_page_token, "a/x2");
        let second = query("", "", 2, &first.next_page_token).page(objects.clone());
        assert_eq!(names(&second), ["b/x0", "b/x1"]);
        assert_eq!(second.next_page_token, "");
        assert_eq!(
            names(&query("b", "", 0, "").page(objects.clone())),
            ["b/x0", "b/x1"]
        );
        assert_eq!(
            names(&query("", "team=net", 0, "").page(objects)),
            ["a/x10", "b/x0"]
        );
    }

    #[test]
    fn pages_by_bytes() {
        // 40 objects of ~100 KB: about 20 fit in 2 MiB.
        let objects: Vec<_> = (0..40)
            .map(|i| object("ns", &format!("c{i:02}"), 100 * 1024))
            .collect();
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let page = query("", "", 0, &token).page(objects.clone());
            assert!(
                page.encoded_len() <= MAX_PAGE_BYTES,
                "{}",
                page.encoded_len()
            );
            assert!(page.test_clusters.len() < 40);
            seen.extend(names(&page));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen.len(), 40);
        seen.dedup();
        assert_eq!(seen.len(), 40);
    }

    #[test]
    fn bad_fields_are_named() {
        let fields = |request: api::ListTestClustersRequest| {
            let status = Query::new(&request).err().expect("invalid");
            testcluster_api::errors::field_violations(&status)
                .into_iter()
                .map(|v| v.field)
                .collect::<Vec<_>>()
        };
        let request = |selector: &str, page_size: i32, token: &str| api::ListTestClustersRequest {
            label_selector: selector.to_owned(),
            page_size,
            page_token: token.to_owned(),
            ..Default::default()
        };
        assert_eq!(fields(request("", -1, "")), ["page_size"]);
        assert_eq!(fields(request("a b c", 0, "")), ["label_selector"]);
        assert_eq!(fields(request("", 0, "garbage")), ["page_token"]);
    }
}
