//! Kubernetes API errors as gRPC statuses: the one place that decides which code a caller sees.

use tonic::Status;

/// Maps a Kubernetes client error on `what` (such as `TestClusterGKE test-clusters/x`) to a status.
///
/// The codes follow what a caller can do about it: NOT_FOUND and ALREADY_EXISTS are about the request,
/// ABORTED asks to retry a lost race, UNAVAILABLE says the management cluster is unhealthy (retry
/// later). Anything the broker itself got wrong (its RBAC, a bad request it built) is INTERNAL.
pub fn kube_status(what: &str, error: kube::Error) -> Status {
    match error {
        kube::Error::Api(response) => {
            let message = format!("{what}: {}", response.message);
            match response.code {
                404 => Status::not_found(message),
                409 if response.is_already_exists() => Status::already_exists(message),
                409 => Status::aborted(message),
                400 | 422 => Status::invalid_argument(message),
                429 | 500..=599 => Status::unavailable(message),
                _ => {
                    tracing::error!(code = response.code, reason = %response.reason, %message, "Kubernetes API refused the broker");
                    Status::internal(message)
                }
            }
        }
        other => {
            // Connection, TLS, timeouts: the API server is unreachable for now.
            tracing::warn!(error = %other, "Kubernetes API unreachable");
            Status::unavailable(format!("{what}: Kubernetes API unreachable: {other}"))
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
    use super::*;
    use tonic::Code;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        let mut status = kube::core::Status::failure("boom", reason);
        status.code = code;
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn codes() {
        let cases = [
            (404, "NotFound", Code::NotFound),
            (409, "AlreadyExists", Code::AlreadyExists),
            (409, "Conflict", Code::Aborted),
            (422, "Invalid", Code::InvalidArgument),
            (429, "TooManyRequests", Code::Unavailable),
            (503, "ServiceUnavailable", Code::Unavailable),
            (403, "Forbidden", Code::Internal),
        ];
        for (http, reason, code) in cases {
            let status = kube_status("TestClusterGKE ns/x", api_error(http, reason));
            assert_eq!(status.code(), code, "{http} {reason}");
            assert_eq!(status.message(), "TestClusterGKE ns/x: boom");
        }
        assert!(is_not_found(&api_error(404, "NotFound")));
        assert!(is_already_exists(&api_error(409, "AlreadyExists")));
        assert!(!is_already_exists(&api_error(409, "Conflict")));
    }
}
