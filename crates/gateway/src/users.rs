//! `/api/v1/users`: the own profile, password change, public profiles with presence, search.

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::openapi::{InvalidRequest, NotFound, RateLimited, TooLarge, Unauthorized, Unprocessable};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parlor_domain::model::{OwnUser, PresenceInfo, PresenceStatus, User};
use parlor_domain::ports::ProfilePatch;
use parlor_domain::requests::{PasswordBody, PatchMe};
use parlor_domain::{Error, Timestamp, UserId, validate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes under `/users`, and the unsubscribe link.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(user))
        .routes(routes!(unsubscribe, unsubscribe_by_form))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UnsubscribeQuery {
    /// The signed token of the link in the e-mail.
    token: Option<String>,
}

/// The answer of the unsubscribe link.
#[derive(Serialize, ToSchema)]
struct Unsubscribed {
    unsubscribed: bool,
    email_notifications: bool,
}

/// The link in every e-mail: turns unread-message e-mails off; no login needed.
#[utoipa::path(
    get, path = "/unsubscribe", tag = "users", params(UnsubscribeQuery),
    responses((status = 200, description = "e-mails are off", body = Unsubscribed), InvalidRequest, Unauthorized)
)]
async fn unsubscribe(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UnsubscribeQuery>,
) -> ApiResult<Json<Unsubscribed>> {
    let token = query.token.unwrap_or_default();
    state.accounts.unsubscribe(&token).await?;
    Ok(Json(Unsubscribed { unsubscribed: true, email_notifications: false }))
}

/// The same as `GET`, for mail clients' one-click unsubscribe (RFC 8058).
#[utoipa::path(
    post, path = "/unsubscribe", tag = "users", params(UnsubscribeQuery),
    responses((status = 200, description = "e-mails are off", body = Unsubscribed), InvalidRequest, Unauthorized)
)]
async fn unsubscribe_by_form(
    state: State<AppState>,
    query: ApiQuery<UnsubscribeQuery>,
) -> ApiResult<Json<Unsubscribed>> {
    unsubscribe(state, query).await
}

/// The caller's own profile.
#[utoipa::path(
    get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "the caller", body = OwnUser), Unauthorized)
)]
async fn me(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<Json<OwnUser>> {
    let record = state
        .store
        .user_by_id(&auth.user_id)
        .await?
        .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
    Ok(Json(record.own()))
}

/// Changes the caller's display name, e-mail address or e-mail preference; absent fields stay.
#[utoipa::path(
    patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = PatchMe,
    responses(
        (status = 200, description = "the updated profile", body = OwnUser),
        InvalidRequest, Unauthorized, TooLarge, Unprocessable
    )
)]
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

/// Changes the password; every other session ends. A wrong `current_password` counts as a failed
/// login of the account (`--auth-failures`): a stolen access token cannot be used to guess the
/// password, and past the limit both this and the login are 429 until the failures drain away.
#[utoipa::path(
    post, path = "/users/me/password", tag = "users", security(("bearer" = [])), request_body = PasswordBody,
    responses(
        (status = 204, description = "changed"),
        InvalidRequest, Unauthorized, Unprocessable, RateLimited
    )
)]
async fn change_password(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    let user = state
        .store
        .user_by_id(&auth.user_id)
        .await?
        .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
    let attempt = state.limits.logins.attempt(&user.user.username)?;
    let outcome = state.accounts.change_password(&auth, &body.current_password, &body.new_password).await;
    attempt.settle(&outcome);
    outcome?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user with presence.
#[derive(Serialize, ToSchema)]
struct Profile {
    #[serde(flatten)]
    user: User,
    presence: PresenceInfo,
}

/// A user's public profile and presence.
#[utoipa::path(
    get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "the user's id")),
    responses((status = 200, description = "the user", body = Profile), Unauthorized, NotFound)
)]
async fn user(
    State(state): State<AppState>,
    Auth(_caller): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Profile>> {
    let id = UserId::from(id);
    let record =
        state.store.user_by_id(&id).await?.ok_or_else(|| Error::NotFound("user not found".into()))?;
    let online = state.presence.online(std::slice::from_ref(&id)).await?.first().copied().unwrap_or(false);
    let presence = if online {
        PresenceInfo { status: PresenceStatus::Online, last_seen_at: Some(Timestamp::now()) }
    } else {
        PresenceInfo { status: PresenceStatus::Offline, last_seen_at: record.last_seen_at }
    };
    Ok(Json(Profile { user: record.user, presence }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// The start of a username, matched regardless of case.
    q: Option<String>,
}

/// Users found.
#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<User>,
}

/// Finds users by the start of their username (up to 20).
#[utoipa::path(
    get, path = "/users", tag = "users", operation_id = "search_users", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, description = "matching users", body = UserList), InvalidRequest, Unauthorized, Unprocessable)
)]
async fn search(
    State(state): State<AppState>,
    Auth(_caller): Auth,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<UserList>> {
    let q = query.q.unwrap_or_default();
    let q = q.trim();
    if q.is_empty() {
        return Err(Error::validation("q", "give the start of a username in q").into());
    }
    let users = state.store.search_users(q, 20).await?;
    Ok(Json(UserList { users }))
}
