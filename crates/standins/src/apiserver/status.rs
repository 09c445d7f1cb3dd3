//! API errors, rendered as `meta/v1 Status` objects like the real server's.

use super::resources::Resource;
use serde_json::{json, Value};

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(res: &Resource, name: &str) -> Option<Value> {
    Some(json!({"name": name, "group": res.group, "kind": res.plural}))
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(res: &Resource, name: &str) -> Self {
        Self {
            details: details(res, name),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", res.qualified()),
            )
        }
    }

    pub fn already_exists(res: &Resource, name: &str) -> Self {
        Self {
            details: details(res, name),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", res.qualified()),
            )
        }
    }

    pub fn conflict(res: &Resource, name: &str) -> Self {
        Self {
            details: details(res, name),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    res.qualified()
                ),
            )
        }
    }

    pub fn invalid(res: &Resource, name: &str, why: &str) -> Self {
        Self {
            details: details(res, name),
            ..Self::new(
                422,
                "Invalid",
                format!("{} \"{name}\" is invalid: {why}", res.kind),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A success `Status` (evictions, bindings).
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

impl From<crate::etcd::EtcdError> for ApiError {
    fn from(e: crate::etcd::EtcdError) -> Self {
        // Storage failures are 500s to clients; the detail goes to the log.
        crate::error!("storage: {e}");
        match e {
            crate::etcd::EtcdError::Unavailable(_) => {
                ApiError::internal("etcdserver: request timed out, possibly due to connection lost")
            }
            _ => ApiError::internal("storage error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn messages_match_the_real_server() {
        let reg = Registry::new();
        let nodes = reg.find("", "v1", "nodes").unwrap();
        let deploy = reg.find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            ApiError::not_found(&nodes, "n1").message,
            "nodes \"n1\" not found"
        );
        let s = ApiError::already_exists(&deploy, "d").to_status();
        assert_eq!(s["message"], "deployments.apps \"d\" already exists");
        assert_eq!(s["reason"], "AlreadyExists");
        assert_eq!(s["code"], 409);
        assert_eq!(s["details"]["kind"], "deployments");
    }
}
