//! A kube-runtime `Controller` with the `finalizer` helper, reconciling a custom resource on the
//! simulator: create (finalizer added, status written), update (status follows the spec,
//! observedGeneration), delete (cleanup ran, object gone).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{CustomResource, ResourceExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use testcluster_sim::{SimConfig, Simulator};

const FINALIZER: &str = "widgets.conformance.testcluster.dev/cleanup";

#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "conformance.testcluster.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled"
)]
pub struct WidgetSpec {
    pub size: i64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    pub observed_generation: i64,
    pub message: String,
}

struct Context {
    client: kube::Client,
    cleaned_up: Mutex<Vec<String>>,
}

type Error = kube::runtime::finalizer::Error<kube::Error>;

async fn reconcile(widget: Arc<Widget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = widget.namespace().unwrap_or_default();
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&widgets, FINALIZER, widget, |event| async {
        match event {
            Finalizer::Apply(widget) => {
                let status = json!({"status": {
                    "observedGeneration": widget.metadata.generation.unwrap_or_default(),
                    "message": format!("size {}", widget.spec.size),
                }});
                widgets
                    .patch_status(
                        &widget.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(status),
                    )
                    .await?;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(widget) => {
                ctx.cleaned_up.lock().push(widget.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(_widget: Arc<Widget>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

fn status_is(generation: i64, message: &'static str) -> impl Fn(Option<&Widget>) -> bool {
    move |widget: Option<&Widget>| {
        widget.and_then(|w| w.status.as_ref())
            == Some(&WidgetStatus {
                observed_generation: generation,
                message: message.to_owned(),
            })
    }
}

#[tokio::test]
async fn a_controller_with_a_finalizer_reconciles_create_update_and_delete() {
    init();
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let client = sim.api().client().await.expect("client");
    create_namespace(&client, "ctl").await;
    register_crd::<Widget>(&client).await;

    let ctx = Arc::new(Context {
        client: client.clone(),
        cleaned_up: Mutex::new(Vec::new()),
    });
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "ctl");
    let controller = tokio::spawn(
        Controller::new(widgets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| async {}),
    );

    // Create: the finalizer goes on first, then the status is written.
    widgets
        .create(
            &PostParams::default(),
            &Widget::new("w1", WidgetSpec { size: 1 }),
        )
        .await
        .expect("create");
    let reconciled = wait_for(&widgets, "w1", status_is(1, "size 1")).await;
    assert_eq!(reconciled.finalizers(), [FINALIZER]);
    assert_eq!(reconciled.spec, WidgetSpec { size: 1 });

    // Update: the status follows the new spec and generation.
    let updated = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .expect("update");
    assert_eq!(updated.metadata.generation, Some(2));
    wait_for(&widgets, "w1", status_is(2, "size 2")).await;
    // A metadata-only change keeps the generation.
    let labelled = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("label");
    assert_eq!(labelled.metadata.generation, Some(2));

    // Delete: the cleanup runs, the finalizer comes off and the object goes.
    assert!(ctx.cleaned_up.lock().is_empty());
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete");
    wait_deleted(&widgets, "w1").await;
    assert_eq!(*ctx.cleaned_up.lock(), ["w1"]);

    controller.abort();
}
