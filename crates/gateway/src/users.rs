//! `/api/v1/users`: the own profile, password change, public profiles with presence, search.

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use parlor_domain::model::{OwnUser, PresenceInfo, PresenceStatus};
use parlor_domain::ports::ProfilePatch;
use parlor_domain::{Error, Timestamp, UserId, validate};
use serde::Deserialize;
use serde_json::{Value, json};

/// The routes under `/users`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(search))
        .route("/users/me", get(me).patch(update_me))
        .route("/users/me/password", post(change_password))
        .route("/users/{id}", get(user))
        .route("/unsubscribe", get(unsubscribe).post(unsubscribe))
}

#[derive(Deserialize)]
struct UnsubscribeQuery {
    token: Option<String>,
}

/// `GET` or `POST /api/v1/unsubscribe?token=`: the link in every e-mail; no login needed.
async fn unsubscribe(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UnsubscribeQuery>,
) -> ApiResult<Json<Value>> {
    let token = query.token.unwrap_or_default();
    state.accounts.unsubscribe(&token).await?;
    Ok(Json(json!({ "unsubscribed": true, "email_notifications": false })))
}

async fn me(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<Json<OwnUser>> {
    let record = state
        .store
        .user_by_id(&auth.user_id)
        .await?
        .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
    Ok(Json(record.own()))
}

#[derive(Deserialize)]
struct PatchMe {
    display_name: Option<String>,
    /// Absent: unchanged; null or "": cleared.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    email_notifications: Option<bool>,
}

/// Tells an absent field (`None`) from a null one (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn update_me(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiJson(body): ApiJson<PatchMe>,
) -> ApiResult<Json<OwnUser>> {
    let display_name = body.display_name.as_deref().map(validate::display_name).transpose()?;
    let email = match body.email {
        None => None,
        Some(None) => Some(None),
        Some(Some(e)) => Some(validate::email(&e)?),
    };
    let patch = ProfilePatch { display_name, email, email_notifications: body.email_notifications };
    Ok(Json(state.store.update_profile(&auth.user_id, patch).await?))
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    state.accounts.change_password(&auth, &body.current_password, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user(
    State(state): State<AppState>,
    Auth(_): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = UserId::from(id);
    let record =
        state.store.user_by_id(&id).await?.ok_or_else(|| Error::NotFound("user not found".into()))?;
    let online = state.presence.online(std::slice::from_ref(&id)).await?.first().copied().unwrap_or(false);
    let presence = if online {
        PresenceInfo { status: PresenceStatus::Online, last_seen_at: Some(Timestamp::now()) }
    } else {
        PresenceInfo { status: PresenceStatus::Offline, last_seen_at: record.last_seen_at }
    };
    let mut body = json!(record.user);
    body["presence"] = json!(presence);
    Ok(Json(body))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Value>> {
    let q = query.q.unwrap_or_default();
    let q = q.trim();
    if q.is_empty() {
        return Err(Error::validation("q", "give the start of a username in q").into());
    }
    let users = state.store.search_users(q, 20).await?;
    Ok(Json(json!({ "users": users })))
}
