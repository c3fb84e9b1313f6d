//! Kubernetes API errors as gRPC statuses: the one place that decides which code a caller sees when
//! a service's call to the management cluster fails. Every service maps through [`kube_status`], so
//! the same failure is the same code whichever server answers.
//!
//! The codes follow what the *caller* can do about it:
//!
//! | Kubernetes                          | gRPC               | the caller may                   |
//! |-------------------------------------|--------------------|----------------------------------|
//! | 404 NotFound                        | NOT_FOUND          | fix the name                     |
//! | 409 AlreadyExists                   | ALREADY_EXISTS     | pick another name                |
//! | 409 Conflict (stale write), 410     | ABORTED            | retry the whole operation        |
//! | 400, 422 Invalid                    | INVALID_ARGUMENT   | fix the request                  |
//! | 429, 5xx, unreachable               | UNAVAILABLE        | retry later                      |
//! | 401, 403, anything else             | INTERNAL           | nothing: the operator must act   |
//!
//! 401 and 403 are INTERNAL, not UNAUTHENTICATED or PERMISSION_DENIED: the services talk to the
//! API server with their *own* service account, never with the caller's identity, so a refusal
//! means the deployment's credentials or RBAC are wrong. Telling the caller it lacks a permission
//! would send them after a grant they cannot get; PERMISSION_DENIED is kept for the services' own
//! decisions about callers (the authentication slot of the gRPC stack).

use tonic::Status;

/// Maps a Kubernetes client error on `what` (such as `TestClusterGKE test-clusters/x`) to a status
/// whose message starts with `what`.
pub fn kube_status(what: &str, error: kube::Error) -> Status {
    match error {
        kube::Error::Api(response) => {
            let message = format!("{what}: {}", response.message);
            match response.code {
                404 => Status::not_found(message),
                409 if response.is_already_exists() => Status::already_exists(message),
                409 | 410 => Status::aborted(message),
                400 | 422 => Status::invalid_argument(message),
                429 | 500..=599 => Status::unavailable(message),
                _ => {
                    // The service's own RBAC or a request it built wrongly: worth an operator's look.
                    tracing::error!(code = response.code, reason = %response.reason, %message, "Kubernetes API refused the request");
                    Status::internal(message)
                }
            }
        }
        // Connection, TLS, a broken response stream, credentials that cannot be refreshed right
        // now: the API server is out of reach for the moment.
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::ReadEvents(_)
        | kube::Error::Auth(_) => {
            tracing::warn!(%error, "Kubernetes API unreachable");
            Status::unavailable(format!("{what}: Kubernetes API unreachable: {error}"))
        }
        // An answer that cannot be decoded or a request that cannot be built: a bug or a version
        // skew, not something a retry fixes.
        other => {
            tracing::error!(error = %other, "Kubernetes client error");
            Status::internal(format!("{what}: {other}"))
        }
    }
}

/// Whether `error` is the API server's 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(response) if response.code == 404)
}

/// Whether `error` is the API server's AlreadyExists conflict.
pub fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(response) if response.is_already_exists())
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        let mut status = kube::core::Status::failure("boom", reason);
        status.code = code;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn api_errors_map_to_the_code_a_caller_can_act_on() {
        let cases = [
            (400, "BadRequest", Code::InvalidArgument),
            (401, "Unauthorized", Code::Internal),
            (403, "Forbidden", Code::Internal),
            (404, "NotFound", Code::NotFound),
            (405, "MethodNotAllowed", Code::Internal),
            (409, "AlreadyExists", Code::AlreadyExists),
            (409, "Conflict", Code::Aborted),
            (410, "Expired", Code::Aborted),
            (422, "Invalid", Code::InvalidArgument),
            (429, "TooManyRequests", Code::Unavailable),
            (500, "InternalError", Code::Unavailable),
            (503, "ServiceUnavailable", Code::Unavailable),
            (504, "Timeout", Code::Unavailable),
        ];
        for (http, reason, code) in cases {
            let status = kube_status("TestClusterGKE ns/x", api_error(http, reason));
            assert_eq!(status.code(), code, "{http} {reason}");
            assert_eq!(
                status.message(),
                "TestClusterGKE ns/x: boom",
                "{http} {reason}"
            );
        }
    }

    #[test]
    fn client_errors_are_unavailable_when_transient_and_internal_otherwise() {
        let unreachable = kube::Error::ReadEvents(std::io::Error::other("reset"));
        let status = kube_status("TestClusterGKE ns/x", unreachable);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.message(),
            "TestClusterGKE ns/x: Kubernetes API unreachable: Error reading events stream: reset"
        );

        let Err(decode) = serde_json::from_str::<u8>("x") else {
            unreachable!("not a number")
        };
        let status = kube_status("TestClusterGKE ns/x", kube::Error::SerdeError(decode));
        assert_eq!(status.code(), Code::Internal);
    }

    #[test]
    fn predicates() {
        assert!(is_not_found(&api_error(404, "NotFound")));
        assert!(!is_not_found(&api_error(409, "Conflict")));
        assert!(is_already_exists(&api_error(409, "AlreadyExists")));
        assert!(!is_already_exists(&api_error(409, "Conflict")));
    }
}
