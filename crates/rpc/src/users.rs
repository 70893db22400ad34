//! The `Users` service over the accounts and presence of this process, and `GrpcAuthenticator`,
//! a gateway's token check when the users role runs elsewhere.

use crate::convert;
use crate::status::{from_status, retryable, to_status};
use crate::{outgoing, trace_id};
use async_trait::async_trait;
use parking_lot::Mutex;
use parlor_domain::ports::{Presence, Store};
use parlor_domain::{Error, Result, Timestamp, UserId};
use parlor_proto::v1 as pb;
use parlor_proto::v1::presence::Status as PbStatus;
use parlor_proto::v1::users_client::UsersClient;
use parlor_proto::v1::users_server::Users;
use parlor_users::{Accounts, Authenticated, Authenticator};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Most users one `GetPresence` may name.
const MAX_PRESENCE: usize = 1000;

/// The `Users` service.
pub struct UsersService {
    accounts: Arc<Accounts>,
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
}

impl UsersService {
    pub fn new(accounts: Arc<Accounts>, store: Arc<dyn Store>, presence: Arc<dyn Presence>) -> Self {
        Self { accounts, store, presence }
    }
}

#[tonic::async_trait]
impl Users for UsersService {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let trace = trace_id(&request);
        let token = request.into_inner().access_token;
        if token.is_empty() {
            return Err(Status::unauthenticated("access_token is required"));
        }
        let auth = self.accounts.authenticate(&token).await.map_err(|e| to_status(&e))?;
        let record = self
            .store
            .user_by_id(&auth.user_id)
            .await
            .map_err(|e| to_status(&e))?
            .ok_or_else(|| Status::unauthenticated("unknown user"))?;
        tracing::debug!(trace_id = %trace, user_id = %auth.user_id, "authenticated");
        Ok(Response::new(pb::AuthenticateResponse {
            user: Some(convert::user(&record.user)),
            session_id: auth.session_id.to_string(),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument("id is required"));
        }
        let record = self
            .store
            .user_by_id(&UserId::from(id))
            .await
            .map_err(|e| to_status(&e))?
            .ok_or_else(|| Status::not_found("user not found"))?;
        Ok(Response::new(pb::GetUserResponse { user: Some(convert::user(&record.user)) }))
    }

    async fn get_presence(
        &self,
        request: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::GetPresenceResponse>, Status> {
        let ids: Vec<UserId> = request.into_inner().user_ids.into_iter().map(UserId::from).collect();
        if ids.len() > MAX_PRESENCE {
            return Err(Status::invalid_argument(format!("at most {MAX_PRESENCE} user ids")));
        }
        let online = self.presence.online(&ids).await.map_err(|e| to_status(&e))?;
        let mut presences = Vec::with_capacity(ids.len());
        for (id, online) in ids.into_iter().zip(online) {
            let last_seen_at = if online {
                Some(Timestamp::now())
            } else {
                self.store.user_by_id(&id).await.map_err(|e| to_status(&e))?.and_then(|r| r.last_seen_at)
            };
            presences.push(pb::Presence {
                user_id: id.to_string(),
                status: if online { PbStatus::Online } else { PbStatus::Offline } as i32,
                last_seen_at: last_seen_at.map(convert::timestamp),
            });
        }
        Ok(Response::new(pb::GetPresenceResponse { presences }))
    }
}

/// A gateway's token check through the `Users` service. Answers are cached for `ttl` (a second
/// by default), so a logout is honoured within that time without a call per request.
pub struct GrpcAuthenticator {
    client: UsersClient<Channel>,
    timeout: Duration,
    ttl: Duration,
    /// Token → who it speaks for, and until when that answer may be reused.
    cache: Mutex<HashMap<String, (Authenticated, Instant)>>,
}

impl GrpcAuthenticator {
    /// A client of the service at `url`; connects lazily and reconnects.
    pub fn connect_lazy(url: &str, timeout: Duration, ttl: Duration) -> Result<Self> {
        let channel = Channel::from_shared(url.to_owned())
            .map_err(|e| Error::internal(format!("bad users URL: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        Ok(Self { client: UsersClient::new(channel), timeout, ttl, cache: Mutex::new(HashMap::new()) })
    }
}

#[async_trait]
impl Authenticator for GrpcAuthenticator {
    async fn authenticate(&self, token: &str) -> Result<Authenticated> {
        if let Some((auth, until)) = self.cache.lock().get(token)
            && *until > Instant::now()
        {
            return Ok(auth.clone());
        }
        let trace = uuid::Uuid::now_v7().to_string();
        let message = pb::AuthenticateRequest { access_token: token.to_owned() };
        let mut attempt = 0;
        let response = loop {
            let mut client = self.client.clone();
            match client.authenticate(outgoing(message.clone(), self.timeout, &trace)).await {
                Ok(r) => break r.into_inner(),
                Err(s) if attempt == 0 && retryable(&s) => attempt += 1,
                Err(s) => return Err(from_status(&s)),
            }
        };
        let user = convert::required(response.user, "user")?;
        let auth = Authenticated { user_id: user.id.into(), session_id: response.session_id.into() };
        let mut cache = self.cache.lock();
        let now = Instant::now();
        if cache.len() > 100_000 {
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(token.to_owned(), (auth.clone(), now + self.ttl));
        Ok(auth)
    }
}
