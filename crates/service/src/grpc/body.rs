//! A response body that tells when the call it carries is over.
//!
//! A gRPC call ends with its status, which for a call that sent messages comes in the body's
//! trailers, long after the handler returned. Layers that hold something for the whole call (a
//! stream slot, a metrics record) wrap the body in [`EndOfCall`], which hands the call's status to
//! an [`OnEnd`] when the trailers pass, or drops it when the body is dropped unfinished (the
//! client went away, the connection broke).

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;

/// What to do when a call is over.
pub trait OnEnd: Send + 'static {
    /// The call ended with `code`; `None` when the body ended without a `grpc-status` (which a
    /// well-behaved server never does). Not called when the body is dropped unfinished: `Drop`
    /// covers that.
    fn on_end(self, code: Option<Code>);
}

/// Holding a value is a complete [`OnEnd`]: it is released when the call ends or is dropped.
impl<T: Send + 'static> OnEnd for Option<T> {
    fn on_end(self, _code: Option<Code>) {}
}

pin_project! {
    /// `inner`, with `on_end` told when the call is over.
    pub struct EndOfCall<B, E> {
        #[pin]
        inner: B,
        on_end: Option<E>,
    }
}

impl<B, E> EndOfCall<B, E> {
    pub fn new(inner: B, on_end: E) -> Self {
        EndOfCall {
            inner,
            on_end: Some(on_end),
        }
    }
}

/// An empty body that ends nothing: for answers a layer makes itself (a refusal).
impl<B: Default, E> Default for EndOfCall<B, E> {
    fn default() -> Self {
        EndOfCall {
            inner: B::default(),
            on_end: None,
        }
    }
}

/// The `grpc-status` in `headers` (trailers, or the headers of a trailers-only answer).
pub fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(code))
}

impl<B, E> Body for EndOfCall<B, E>
where
    B: Body,
    E: OnEnd,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        let ended = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().map(grpc_code),
            // A failing body resets the HTTP/2 stream: the client sees no status at all.
            Some(Err(_)) => Some(Some(Code::Unknown)),
            None => Some(None),
        };
        if let Some(code) = ended
            && let Some(on_end) = this.on_end.take()
        {
            on_end.on_end(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
