//! `Chat`, the gRPC face of the send path for trusted integrations (bots, bridges). A call must
//! carry the deployment's service token; the message then takes the same path as a WebSocket
//! send (`admission::admit_send`: validation, membership, a rate limit; then the queue, review,
//! the store, the fan-out). The rate limit is the integrations' own, per author posted as
//! (`GatewaySettings::service_send_rate`).

use crate::admission::{SendRequest, Sender, admit_send};
use crate::pending::submit_and_wait;
use crate::state::AppState;
use parlor_domain::queue::Outcome;
use parlor_domain::{RoomId, UserId};
use parlor_proto::v1 as pb;
use parlor_proto::v1::chat_server::Chat;
use parlor_rpc::status::to_status;
use parlor_rpc::{convert, trace_id};
use tonic::{Request, Response, Status};

/// The `Chat` service.
pub struct ChatService {
    state: AppState,
    /// The service token integrations present as `authorization: Bearer <token>`.
    token: String,
}

impl ChatService {
    /// The service over a gateway's state, admitting callers with `token`.
    pub fn new(state: AppState, token: String) -> Self {
        Self { state, token }
    }

    fn admitted<T>(&self, request: &Request<T>) -> bool {
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }
}

/// Compares in constant time: both sides are hashed first, so neither the content nor the length
/// of the token shows in the timing. An empty token is never admitted.
fn constant_time_eq(given: &[u8], token: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let same: bool = Sha256::digest(given).ct_eq(&Sha256::digest(token)).into();
    same && !token.is_empty()
}

#[tonic::async_trait]
impl Chat for ChatService {
    async fn post_message(
        &self,
        request: Request<pb::PostMessageRequest>,
    ) -> Result<Response<pb::PostMessageResponse>, Status> {
        if !self.admitted(&request) {
            return Err(Status::unauthenticated("a valid service token is required"));
        }
        let trace = trace_id(&request);
        let r = request.into_inner();
        tracing::info!(trace_id = %trace, room_id = %r.room_id, author_id = %r.author_id, "integration post");
        if r.room_id.is_empty() || r.author_id.is_empty() {
            return Err(Status::invalid_argument("room_id and author_id are required"));
        }
        let author_id = UserId::from(r.author_id);
        let nonce = (!r.nonce.is_empty()).then_some(r.nonce);
        let request = SendRequest { room_id: RoomId::from(r.room_id), body: r.body, nonce, reply_to: None };
        let who = Sender::Service { author: &author_id };
        let command = admit_send(&self.state, &who, request).await.map_err(|e| to_status(&e))?;
        match submit_and_wait(&self.state, command).await.map_err(|e| to_status(&e))? {
            Outcome::Created { message, created } => Ok(Response::new(pb::PostMessageResponse {
                message: Some(convert::message(&message)),
                created,
            })),
            Outcome::Failed(e) => Err(to_status(&e)),
            _ => Err(Status::internal("unexpected outcome")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-longer", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"", b""));
    }
}
