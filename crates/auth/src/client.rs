//! The client side: a bearer token on every call of a channel.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds `authorization: Bearer TOKEN` to each call (nothing when it has no token). The value is
/// marked sensitive, so that HTTP/2's header compression and debug output leave it out.
#[derive(Clone, Default)]
pub struct Bearer {
    value: Option<MetadataValue<Ascii>>,
}

/// A channel whose calls carry a [`Bearer`] token.
pub type AuthorizedChannel = InterceptedService<Channel, Bearer>;

impl Bearer {
    /// `None` when `token` cannot be a header value (it is then refused before any call).
    pub fn new(token: Option<&str>) -> anyhow::Result<Bearer> {
        let value = match token {
            Some(token) => {
                let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("the token holds characters a header cannot"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Bearer { value })
    }

    /// `channel`, with this token on each call.
    pub fn on(self, channel: Channel) -> AuthorizedChannel {
        InterceptedService::new(channel, self)
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.value.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
