//! The `Moderation` service over the in-process reviewer, and `GrpcReviewer`, the worker's
//! reviewer when moderation runs in its own process.

use crate::status::{from_status, retryable, to_status};
use crate::{outgoing, trace_id};
use async_trait::async_trait;
use parlor_domain::ports::{ReviewRequest, Reviewer, Verdict};
use parlor_domain::{Error, RejectReason, Result, validate};
use parlor_proto::v1 as pb;
use parlor_proto::v1::moderation_client::ModerationClient;
use parlor_proto::v1::moderation_server::Moderation;
use parlor_proto::v1::review_response::{Reason, Verdict as PbVerdict};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The `Moderation` service.
pub struct ModerationService {
    reviewer: Arc<dyn Reviewer>,
}

impl ModerationService {
    /// The service over a reviewer (the moderation role's `Moderator`).
    pub fn new(reviewer: Arc<dyn Reviewer>) -> Self {
        Self { reviewer }
    }
}

fn reason_to_pb(r: RejectReason) -> Reason {
    match r {
        RejectReason::Spam => Reason::Spam,
        RejectReason::BlockedWord => Reason::BlockedWord,
        RejectReason::Flood => Reason::Flood,
        RejectReason::TooManyLinks => Reason::TooManyLinks,
    }
}

fn reason_from_pb(r: Reason) -> RejectReason {
    match r {
        Reason::BlockedWord => RejectReason::BlockedWord,
        Reason::Flood => RejectReason::Flood,
        Reason::TooManyLinks => RejectReason::TooManyLinks,
        Reason::Spam | Reason::Unspecified => RejectReason::Spam,
    }
}

#[tonic::async_trait]
impl Moderation for ModerationService {
    async fn review(
        &self,
        request: Request<pb::ReviewRequest>,
    ) -> Result<Response<pb::ReviewResponse>, Status> {
        let trace = trace_id(&request);
        let r = request.into_inner();
        let span =
            tracing::info_span!("review", trace_id = %trace, author_id = %r.author_id, room_id = %r.room_id);
        // Instrumented, not entered: a guard held across the await would put the lines of
        // whatever else this thread polls meanwhile under this review.
        async move {
            if r.author_id.is_empty() || r.room_id.is_empty() {
                return Err(Status::invalid_argument("author_id and room_id are required"));
            }
            validate::body(&r.body).map_err(|e| to_status(&e))?;
            let verdict = self
                .reviewer
                .review(ReviewRequest {
                    author_id: r.author_id.into(),
                    room_id: r.room_id.into(),
                    body: r.body,
                    trace_id: trace.clone(),
                })
                .await
                .map_err(|e| to_status(&e))?;
            let response = match verdict {
                Verdict::Allow { html, mentions } => pb::ReviewResponse {
                    verdict: PbVerdict::Allow as i32,
                    reason: Reason::Unspecified as i32,
                    message: String::new(),
                    html,
                    mentions: mentions.into_iter().map(|m| m.to_string()).collect(),
                },
                Verdict::Reject { reason, message } => pb::ReviewResponse {
                    verdict: PbVerdict::Reject as i32,
                    reason: reason_to_pb(reason) as i32,
                    message,
                    html: String::new(),
                    mentions: Vec::new(),
                },
            };
            Ok(Response::new(response))
        }
        .instrument(span)
        .await
    }
}

/// The reviewer of a worker whose moderation runs elsewhere: each review is a `Review` call with a
/// deadline, made once more if the service was unavailable (a review changes nothing but the
/// flood window, so a retry is safe).
#[derive(Clone)]
pub struct GrpcReviewer {
    client: ModerationClient<Channel>,
    timeout: Duration,
}

impl GrpcReviewer {
    /// A client of the service at `url` (`http://host:port`); connects lazily and reconnects.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self> {
        let channel = Channel::from_shared(url.to_owned())
            .map_err(|e| Error::internal(format!("bad moderation URL: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        Ok(Self { client: ModerationClient::new(channel), timeout })
    }
}

#[async_trait]
impl Reviewer for GrpcReviewer {
    async fn review(&self, request: ReviewRequest) -> Result<Verdict> {
        let trace = if request.trace_id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            request.trace_id.clone()
        };
        let message = pb::ReviewRequest {
            author_id: request.author_id.to_string(),
            room_id: request.room_id.to_string(),
            body: request.body,
        };
        let mut attempt = 0;
        let response = loop {
            let mut client = self.client.clone();
            match client.review(outgoing(message.clone(), self.timeout, &trace)).await {
                Ok(r) => break r.into_inner(),
                Err(s) if attempt == 0 && retryable(&s) => {
                    attempt += 1;
                    tracing::debug!(trace_id = %trace, status = %s, "review failed; retrying once");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => return Err(from_status(&s)),
            }
        };
        match PbVerdict::try_from(response.verdict) {
            Ok(PbVerdict::Allow) => Ok(Verdict::Allow {
                html: response.html,
                mentions: response.mentions.into_iter().map(Into::into).collect(),
            }),
            Ok(PbVerdict::Reject) => Ok(Verdict::Reject {
                reason: reason_from_pb(Reason::try_from(response.reason).unwrap_or(Reason::Spam)),
                message: response.message,
            }),
            _ => Err(Error::Unavailable("moderation answered without a verdict".into())),
        }
    }
}
