//! The server stack over real HTTP/2: the open-stream bound and the gRPC metrics.
//!
//! `grpc.health.v1.Health` is served by every server and has both kinds of call, so it stands in
//! for a service's own methods: `Check` is unary, `Watch` a server stream that stays open.

use std::net::SocketAddr;
use std::time::Duration;

use testcluster_service::grpc::limits::TOO_MANY_STREAMS;
use testcluster_service::grpc::rate::TOO_FAST;
use testcluster_service::grpc::{GrpcServer, Limits, RateLimit};
use testcluster_service::metrics::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

const BOUND: Duration = Duration::from_secs(10);

struct Server {
    channel: Channel,
    health: HealthClient<Channel>,
    metrics: Metrics,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn serve(limits: Limits) -> Server {
    let listener = testcluster_service::grpc::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let server = GrpcServer::new(&metrics).limits(limits);
    let task = tokio::spawn(server.serve(listener, shutdown.clone()));
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Server {
        health: HealthClient::new(channel.clone()),
        channel,
        metrics,
        shutdown,
        task,
    }
}

impl Server {
    fn channel(&self) -> Channel {
        self.channel.clone()
    }

    async fn watch(&self) -> Result<Streaming<HealthCheckResponse>, tonic::Status> {
        let mut stream = self
            .health
            .clone()
            .watch(HealthCheckRequest::default())
            .await?
            .into_inner();
        // The first message proves the stream is open on the server, not just requested.
        let first = tokio::time::timeout(BOUND, stream.message())
            .await
            .expect("first status in time")?;
        assert!(first.is_some(), "a first status");
        Ok(stream)
    }

    /// The value of the series `name{labels}` in the exposition, if it is there.
    fn sample(&self, series: &str) -> Option<f64> {
        self.metrics.encode().lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.parse().ok()
        })
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(BOUND, self.task)
            .await
            .expect("stops")
            .expect("task")
            .expect("served");
    }
}

const WATCH: &str =
    r#"grpc_service="grpc.health.v1.Health",grpc_method="Watch",grpc_type="server_stream""#;
const CHECK: &str = r#"grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_type="unary""#;

#[tokio::test]
async fn open_streams_are_bounded_for_their_whole_life() {
    let server = serve(Limits {
        max_calls: 64,
        max_streams: 2,
        rate: None,
    })
    .await;
    let first = server.watch().await.expect("first stream");
    let second = server.watch().await.expect("second stream");
    assert_eq!(
        server.sample(&format!("grpc_server_open_streams{{{WATCH}}}")),
        Some(2.0)
    );

    // Both streams have long sent their headers; their slots are still held.
    let refused = server.watch().await.expect_err("a third stream is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(refused.message(), TOO_MANY_STREAMS);
    assert_eq!(
        server.sample(&format!(
            "grpc_server_limited_total{{{WATCH},limit=\"streams\"}}"
        )),
        Some(1.0)
    );
    // Unary calls have their own bound: open streams do not starve them.
    server
        .health
        .clone()
        .check(HealthCheckRequest::default())
        .await
        .expect("a unary call still passes");

    // A stream the client drops gives its slot back (once the server sees the reset).
    drop(first);
    let third = tokio::time::timeout(BOUND, async {
        loop {
            match server.watch().await {
                Ok(stream) => break stream,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .await
    .expect("the dropped stream's slot frees");
    assert_eq!(
        server.sample(&format!("grpc_server_open_streams{{{WATCH}}}")),
        Some(2.0)
    );
    let counted = |code: &str| {
        server.sample(&format!(
            "grpc_server_handled_total{{{WATCH},grpc_code=\"{code}\"}}"
        ))
    };
    assert!(counted("RESOURCE_EXHAUSTED") >= Some(1.0));
    assert_eq!(counted("CANCELLED"), Some(1.0), "the dropped stream");
    drop((second, third));
    server.stop().await;
}

#[tokio::test]
async fn a_stream_that_ends_gives_its_slot_back_before_the_client_sees_its_end() {
    let server = serve(Limits {
        max_calls: 64,
        max_streams: 1,
        rate: None,
    })
    .await;
    // Reflection answers each request and ends its stream once the client's side is done.
    let mut reflection = ServerReflectionClient::new(server.channel());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([list.clone()]))
        .await
        .expect("reflection")
        .into_inner();
    let mut count = 0;
    while let Some(_answer) = tokio::time::timeout(BOUND, answers.message())
        .await
        .expect("answered in time")
        .expect("an answer")
    {
        count += 1;
    }
    assert_eq!(count, 1);

    // No waiting: the slot was given back when the stream's status left the server.
    let watch = server.watch().await.expect("the only slot is free again");
    let refused = reflection
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .expect_err("the watch holds the only slot");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(
        server.sample(
            r#"grpc_server_handled_total{grpc_service="grpc.reflection.v1.ServerReflection",grpc_method="ServerReflectionInfo",grpc_type="bidi_stream",grpc_code="OK"}"#
        ),
        Some(1.0)
    );
    drop(watch);
    server.stop().await;
}

#[tokio::test]
async fn calls_are_counted_by_method_and_code_and_timed() {
    let server = serve(Limits::default()).await;
    let mut health = server.health.clone();
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("the server is serving");
    let unknown = HealthCheckRequest {
        service: "no.such.Service".to_owned(),
    };
    let status = health.check(unknown).await.expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound);

    let handled = |code: &str| {
        server.sample(&format!(
            "grpc_server_handled_total{{{CHECK},grpc_code=\"{code}\"}}"
        ))
    };
    assert_eq!(handled("OK"), Some(1.0));
    assert_eq!(handled("NOT_FOUND"), Some(1.0));
    assert_eq!(
        server.sample(&format!("grpc_server_handling_seconds_count{{{CHECK}}}")),
        Some(2.0)
    );
    let text = server.metrics.encode();
    assert!(
        text.contains("# TYPE grpc_server_handling_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE grpc_server_handled_total counter"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_caller_over_its_rate_is_refused_and_counted() {
    // A burst of 3 refilled so slowly that no call in this test is refilled.
    let server = serve(Limits {
        rate: Some(RateLimit {
            per_second: 0.001,
            burst: 3.0,
        }),
        ..Limits::default()
    })
    .await;
    for _ in 0..3 {
        server
            .health
            .clone()
            .check(HealthCheckRequest::default())
            .await
            .expect("within the burst");
    }
    let refused = server
        .health
        .clone()
        .check(HealthCheckRequest::default())
        .await
        .expect_err("over the rate");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(refused.message(), TOO_FAST);
    assert_eq!(
        server.sample(&format!(
            "grpc_server_limited_total{{{CHECK},limit=\"rate\"}}"
        )),
        Some(1.0)
    );
    server.stop().await;
}
