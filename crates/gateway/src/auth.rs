//! `/api/v1/auth`: register, login, refresh, logout, recover, sessions.

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, UserAgent};
use crate::openapi::{
    Conflict, InvalidRequest, NotFound, RateLimited, TooLarge, Unauthorized, Unavailable, Unprocessable,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use parlor_domain::model::{OwnUser, SessionInfo};
use parlor_domain::requests::{LoginBody, RecoverBody, RefreshBody, RegisterBody};
use parlor_users::{Registered, SignedIn, TokenPair};
use serde::Serialize;
use std::net::SocketAddr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes under `/auth`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(recover))
        .routes(routes!(sessions))
        .routes(routes!(revoke))
}

/// A new account (or a recovered one) with its tokens and a new recovery phrase, shown once.
#[derive(Serialize, ToSchema)]
struct RegisteredBody {
    user: OwnUser,
    recovery_phrase: String,
    #[serde(flatten)]
    tokens: TokenPair,
}

impl From<Registered> for RegisteredBody {
    fn from(r: Registered) -> Self {
        Self { user: r.user, recovery_phrase: r.recovery_phrase, tokens: r.tokens }
    }
}

/// A started session.
#[derive(Serialize, ToSchema)]
struct SignedInBody {
    user: OwnUser,
    #[serde(flatten)]
    tokens: TokenPair,
}

impl From<SignedIn> for SignedInBody {
    fn from(s: SignedIn) -> Self {
        Self { user: s.user, tokens: s.tokens }
    }
}

/// The caller's sessions.
#[derive(Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<SessionInfo>,
}

/// Creates an account and its first session.
#[utoipa::path(
    post, path = "/register", tag = "auth", request_body = RegisterBody,
    responses(
        (status = 201, description = "the account, its tokens and its recovery phrase", body = RegisteredBody),
        InvalidRequest, Conflict, TooLarge, Unprocessable, RateLimited, Unavailable
    )
)]
async fn register(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    UserAgent(ua): UserAgent,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<RegisteredBody>)> {
    state.limits.auth(addr.ip())?;
    let r = state
        .accounts
        .register(&body.username, &body.password, body.display_name.as_deref(), body.email.as_deref(), ua)
        .await?;
    Ok((StatusCode::CREATED, Json(r.into())))
}

/// Starts a session with a username and password. Past `--auth-failures` wrong passwords for one
/// username (known or not), attempts for it are 429 until the failures drain away.
#[utoipa::path(
    post, path = "/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "the user and the session's tokens", body = SignedInBody),
        InvalidRequest, Unauthorized, crate::openapi::Forbidden, TooLarge, RateLimited, Unavailable
    )
)]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    UserAgent(ua): UserAgent,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Json<SignedInBody>> {
    state.limits.auth(addr.ip())?;
    let attempt = state.limits.logins.attempt(&body.username)?;
    let outcome = state.accounts.login(&body.username, &body.password, ua).await;
    attempt.settle(&outcome);
    Ok(Json(outcome?.into()))
}

/// Trades a refresh token for a new pair; the old refresh token stops working.
#[utoipa::path(
    post, path = "/refresh", tag = "auth", request_body = RefreshBody,
    responses(
        (status = 200, description = "a new token pair", body = TokenPair),
        InvalidRequest, Unauthorized, RateLimited, Unavailable
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Json<TokenPair>> {
    state.limits.auth(addr.ip())?;
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?))
}

/// Ends the caller's session.
#[utoipa::path(
    post, path = "/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "the session is over"), Unauthorized)
)]
async fn logout(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<StatusCode> {
    state.accounts.logout(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password with the recovery phrase; every other session ends and a new phrase is given.
/// Wrong phrases are counted per username as wrong passwords are for login.
#[utoipa::path(
    post, path = "/recover", tag = "auth", request_body = RecoverBody,
    responses(
        (status = 200, description = "the account, a new session and a new recovery phrase", body = RegisteredBody),
        InvalidRequest, Unauthorized, crate::openapi::Forbidden, Unprocessable, RateLimited, Unavailable
    )
)]
async fn recover(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    UserAgent(ua): UserAgent,
    ApiJson(body): ApiJson<RecoverBody>,
) -> ApiResult<Json<RegisteredBody>> {
    state.limits.auth(addr.ip())?;
    let attempt = state.limits.recoveries.attempt(&body.username)?;
    let outcome = state.accounts.recover(&body.username, &body.recovery_phrase, &body.new_password, ua).await;
    attempt.settle(&outcome);
    Ok(Json(outcome?.into()))
}

/// The caller's sessions, the current one marked.
#[utoipa::path(
    get, path = "/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "sessions", body = SessionList), Unauthorized)
)]
async fn sessions(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<Json<SessionList>> {
    Ok(Json(SessionList { sessions: state.accounts.sessions(&auth).await? }))
}

/// Ends one of the caller's sessions.
#[utoipa::path(
    delete, path = "/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "the session's id")),
    responses((status = 204, description = "the session is over"), Unauthorized, NotFound)
)]
async fn revoke(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.accounts.revoke(&auth, &id.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}
