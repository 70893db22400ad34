//! `/api/v1/auth`: register, login, refresh, logout, recover, sessions.

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, UserAgent};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use parlor_users::{Registered, SignedIn, TokenPair};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// The routes under `/auth`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/recover", post(recover))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(revoke))
}

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    password: String,
    display_name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize)]
struct RecoverBody {
    username: String,
    recovery_phrase: String,
    new_password: String,
}

fn with_tokens(mut base: Value, tokens: &TokenPair) -> Value {
    if let Value::Object(map) = &mut base {
        map.insert("access_token".into(), json!(tokens.access_token));
        map.insert("refresh_token".into(), json!(tokens.refresh_token));
        map.insert("expires_in".into(), json!(tokens.expires_in));
    }
    base
}

fn registered(r: Registered) -> Value {
    with_tokens(json!({ "user": r.user, "recovery_phrase": r.recovery_phrase }), &r.tokens)
}

fn signed_in(s: SignedIn) -> Value {
    with_tokens(json!({ "user": s.user }), &s.tokens)
}

async fn register(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    UserAgent(ua): UserAgent,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    state.limits.auth(addr.ip())?;
    let r = state
        .accounts
        .register(&body.username, &body.password, body.display_name.as_deref(), body.email.as_deref(), ua)
        .await?;
    Ok((StatusCode::CREATED, Json(registered(r))))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    UserAgent(ua): UserAgent,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Json<Value>> {
    state.limits.auth(addr.ip())?;
    Ok(Json(signed_in(state.accounts.login(&body.username, &body.password, ua).await?)))
}

async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Json<TokenPair>> {
    state.limits.auth(addr.ip())?;
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?))
}

async fn logout(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<StatusCode> {
    state.accounts.logout(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn recover(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    UserAgent(ua): UserAgent,
    ApiJson(body): ApiJson<RecoverBody>,
) -> ApiResult<Json<Value>> {
    state.limits.auth(addr.ip())?;
    let r = state.accounts.recover(&body.username, &body.recovery_phrase, &body.new_password, ua).await?;
    Ok(Json(registered(r)))
}

async fn sessions(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "sessions": state.accounts.sessions(&auth).await? })))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.accounts.revoke(&auth, &id.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}
