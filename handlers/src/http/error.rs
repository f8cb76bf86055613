//! The one error type of the HTTP layer and its mapping to HTTP statuses and custom-handler `Outputs`.

use serde_json::{json, Value};

use super::protocol::HttpReply;

/// Everything a function invocation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request (envelope or body) is malformed or names nothing valid: 400.
    #[error("{0}")]
    BadRequest(String),
    /// No such function or route: 404.
    #[error("{0}")]
    NotFound(String),
    /// The method is not one the function accepts: 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// No valid credentials (missing, expired, tampered, wrong audience…): 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not entitled to this: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The lake (or another dependency) cannot be reached: 503.
    #[error("{0}")]
    Unavailable(String),
    /// A pipeline stage failed: 500. Logged as `pipeline_run_failed stage=<stage>`.
    #[error("stage {stage} failed: {message}")]
    StageFailed {
        /// Stage name (`bronze.adt`, `silver`, `gold`, …).
        stage: String,
        /// What went wrong.
        message: String,
    },
    /// Anything else: 500.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// HTTP status of the error.
    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest(_) => 400,
            AppError::NotFound(_) => 404,
            AppError::MethodNotAllowed(_) => 405,
            AppError::Unauthorized(_) => 401,
            AppError::Forbidden(_) => 403,
            AppError::Unavailable(_) => 503,
            AppError::StageFailed { .. } | AppError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "BAD_REQUEST",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            AppError::Unauthorized(_) => "UNAUTHORIZED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::Unavailable(_) => "UNAVAILABLE",
            AppError::StageFailed { .. } => "STAGE_FAILED",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// The JSON error body every route uses: `{"error": {"code": …, "message": …}}`.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let AppError::StageFailed { stage, .. } = self {
            error["stage"] = json!(stage);
        }
        json!({ "error": error })
    }

    /// The error as an HTTP reply (for `Outputs.res` or a direct answer).
    pub fn reply(&self) -> HttpReply {
        let mut reply = HttpReply::json(self.status(), self.body());
        if matches!(self, AppError::Unauthorized(_)) {
            reply.headers.insert(
                "WWW-Authenticate".into(),
                "Bearer realm=\"patientflow\"".into(),
            );
        }
        reply
    }

    /// A pipeline-stage failure from a core error.
    pub fn stage(stage: &str, e: impl std::fmt::Display) -> Self {
        AppError::StageFailed {
            stage: stage.to_string(),
            message: e.to_string(),
        }
    }

    /// Maps a core error met while serving a request: bad input and rejected SQL are the caller's fault
    /// (400); configuration, storage and Delta errors are ours (500).
    pub fn from_core(e: patientflow_core::Error) -> Self {
        use patientflow_core::Error as E;
        match e {
            E::Query(_) | E::Input { .. } => AppError::BadRequest(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        super::reply_response(&self.reply())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_statuses_and_one_body_shape() {
        assert_eq!(AppError::BadRequest("x".into()).status(), 400);
        assert_eq!(AppError::Unavailable("x".into()).status(), 503);
        let u = AppError::Unauthorized("no token".into()).reply();
        assert_eq!(u.status, 401);
        assert!(u.headers.contains_key("WWW-Authenticate"));
        assert_eq!(AppError::Forbidden("x".into()).status(), 403);
        let e = AppError::stage("silver", "boom");
        assert_eq!(e.status(), 500);
        assert_eq!(e.body()["error"]["stage"], "silver");
        assert_eq!(e.body()["error"]["code"], "STAGE_FAILED");
        let q = AppError::from_core(patientflow_core::Error::Query("read-only endpoint".into()));
        assert_eq!(q.status(), 400);
        let s = AppError::from_core(patientflow_core::Error::Storage("down".into()));
        assert_eq!(s.status(), 500);
    }
}
