//! Fuzz targets, run as property tests so that they run on stable with the rest of the suite:
//! random requests and objects, shaped to reach the rules' corners (empty, overlong, control and
//! non-ASCII characters, out-of-range numbers), must never make the code panic, and what it
//! promises must hold.
//!
//! CI runs each target's default number of cases (a few seconds). A longer run is one command:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo nextest run -p testcluster-resources -p testcluster-provisioner -p testcluster-logview fuzz_
//! ```

use std::collections::BTreeMap;

use proptest::prelude::*;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use testcluster_resources::spec::TestClusterGKESpec;
use testcluster_resources::validation::{
    ObjectParts, RequestedName, Templates, check_create, validate_object,
};

/// Text that reaches the rules' corners: mostly name-like, sometimes empty, long, or with control
/// characters, NULs and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,40}",
        1 => Just(String::new()),
        1 => "[a-z0-9./:@_-]{0,300}",
        1 => any::<String>(),
        1 => "[\\x00-\\x1f\\u{80}-\\u{10ffff}a-z]{0,20}",
    ]
}

fn optional_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn env_var() -> impl Strategy<Value = api::EnvVar> {
    (text(), optional_text(), any::<bool>()).prop_map(|(name, value, secret)| api::EnvVar {
        name,
        value: value.clone(),
        value_from: secret.then(|| api::EnvVarSource {
            secret_key_ref: Some(api::SecretKeySelector {
                name: "s".to_owned(),
                key: "k".to_owned(),
                optional: None,
            }),
            ..Default::default()
        }),
    })
}

/// Boxed, as [`request`]: the nested strategies' value trees are large enough to overflow a test
/// thread's stack in a debug build otherwise.
fn spec() -> BoxedStrategy<api::TestClusterSpec> {
    let runner = (
        optional_text(),
        proptest::collection::vec(text(), 0..4),
        optional_text(),
        proptest::collection::vec(env_var(), 0..4),
        optional_text(),
    )
        .prop_map(
            |(image, command, init_image, env, config_map)| api::JobRunnerSpec {
                image,
                command,
                init_image,
                env,
                config_map,
            },
        );
    let job = proptest::option::of(
        (
            proptest::option::of(runner),
            proptest::collection::btree_map(text(), text(), 0..3),
            optional_text(),
        )
            .prop_map(|(runner, images_to_test, deadline)| api::JobSpec {
                runner,
                images_to_test,
                deadline,
            })
            .boxed(),
    );
    (
        (
            optional_text(),
            optional_text(),
            optional_text(),
            optional_text(),
        ),
        (
            optional_text(),
            job,
            optional_text(),
            proptest::option::of(any::<i32>()),
        ),
        (optional_text(), optional_text()),
    )
        .prop_map(
            |(
                (project, config_template, location, region),
                (kubernetes_version, job_spec, machine_type, nodes),
                (ttl, hold_on_failure),
            )| api::TestClusterSpec {
                project,
                config_template,
                location,
                region,
                kubernetes_version,
                job_spec,
                machine_type,
                nodes,
                ttl,
                hold_on_failure,
            },
        )
        .boxed()
}

fn request() -> BoxedStrategy<api::CreateTestClusterRequest> {
    (
        (text(), text(), text(), proptest::option::of(spec())),
        (optional_text(), text()),
        (
            proptest::collection::btree_map(text(), text(), 0..3),
            proptest::collection::btree_map(text(), text(), 0..3),
        ),
    )
        .prop_map(
            |(
                (namespace, name, name_prefix, spec),
                (init_manifest, description),
                (labels, annotations),
            )| {
                api::CreateTestClusterRequest {
                    namespace,
                    name,
                    name_prefix,
                    spec,
                    init_manifest,
                    github: None,
                    description,
                    labels,
                    annotations,
                }
            },
        )
        .boxed()
}

proptest! {
    /// Request validation and defaulting: never a panic; a request it accepts becomes an object
    /// that the provisioner's check of kubectl-created objects accepts too (the two places agree).
    #[test]
    fn fuzz_request_validation_and_defaulting(request in request()) {
        let (checked, violations) = check_create(request, "test-clusters", Templates::Any);
        if violations.is_empty() {
            prop_assert!(!checked.namespace.is_empty());
            let name = match &checked.name {
                RequestedName::Exact(name) => name.clone(),
                RequestedName::Prefix(_) => checked.name.representative(),
            };
            let again = validate_object(
                ObjectParts {
                    name: &name,
                    labels: &checked.labels,
                    annotations: &checked.annotations,
                    spec: &checked.spec,
                },
                Templates::Any,
            );
            prop_assert!(again.is_empty(), "accepted, then refused as an object: {again:?}");
            prop_assert!(checked.spec.nodes.is_some(), "defaulted");
        }
    }

    /// The CR→proto conversion: never a panic, and a spec survives proto → CR → proto unchanged.
    #[test]
    fn fuzz_spec_conversion_round_trips(spec in spec()) {
        let resource: TestClusterGKESpec = spec.clone().into();
        let back: api::TestClusterSpec = resource.clone().into();
        prop_assert_eq!(&back, &spec);
        let mut object = TestClusterGKE::new("fuzz", resource);
        object.metadata.namespace = Some("test-clusters".to_owned());
        object.metadata.labels = Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]));
        let converted = to_test_cluster(&object);
        prop_assert_eq!(converted.spec.as_ref(), Some(&spec));
        prop_assert_eq!(converted.name, "fuzz");
    }
}
