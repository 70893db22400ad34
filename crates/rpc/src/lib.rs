//! parlor's gRPC edges. The services (`Users`, `Moderation`; `Chat` lives with the gateway, which
//! owns the send path) hold handles to the same domain code the in-process roles call, and the
//! clients implement the same ports (`Reviewer`, `Authenticator`), so a role moves into its own
//! process by configuration alone.
//!
//! Every call carries a deadline and an `x-trace-id` (made by the first caller, passed on), and
//! every server serves `grpc.health.v1.Health` and server reflection beside its services.

pub mod convert;
pub mod moderation;
pub mod server;
pub mod status;
pub mod users;

/// The metadata key of the trace id that follows a request through every service.
pub const TRACE_ID: &str = "x-trace-id";

/// The trace id of an incoming request, or a new one.
pub fn trace_id<T>(request: &tonic::Request<T>) -> String {
    request
        .metadata()
        .get(TRACE_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// A request with a deadline and a trace id.
pub fn outgoing<T>(message: T, timeout: std::time::Duration, trace: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    if let Ok(value) = trace.parse() {
        request.metadata_mut().insert(TRACE_ID, value);
    }
    request
}
