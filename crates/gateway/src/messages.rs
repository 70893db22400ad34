//! `/api/v1/rooms/{id}/messages`, read markers and `/api/v1/search`. Sends, edits and deletes go
//! through the queue to the worker like WebSocket sends; the handler waits for the outcome.

use crate::admission::{SendRequest, Sender, admit_delete, admit_edit, admit_send};
use crate::error::ApiResult;
use crate::events;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::openapi::{
    Forbidden, InvalidRequest, NotFound, RateLimited, TooLarge, Unauthorized, Unavailable, Unprocessable,
};
use crate::pending::submit_and_wait;
use crate::rooms::member_access;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parlor_domain::model::Message;
use parlor_domain::ports::Page;
use parlor_domain::queue::Outcome;
use parlor_domain::requests::{EditBody, ReadBody, SendBody};
use parlor_domain::{Error, RoomId, validate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The message routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, send))
        .routes(routes!(edit, remove))
        .routes(routes!(read))
        .routes(routes!(search))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Messages with a smaller seq (older).
    before: Option<i64>,
    /// Messages with a larger seq (newer).
    after: Option<i64>,
    /// 1–100, default 50.
    limit: Option<i64>,
}

/// A page of history, oldest first.
#[derive(Serialize, ToSchema)]
struct HistoryPage {
    messages: Vec<Message>,
    /// Whether there are more in the direction asked.
    has_more: bool,
}

/// Messages found.
#[derive(Serialize, ToSchema)]
struct MessageList {
    messages: Vec<Message>,
}

/// A page of a room's history: the latest, or before or after a seq.
#[utoipa::path(
    get, path = "/rooms/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "the room's id"), HistoryQuery),
    responses(
        (status = 200, description = "a page of messages", body = HistoryPage),
        InvalidRequest, Unauthorized, Forbidden, NotFound, Unprocessable
    )
)]
async fn history(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    let room_id = RoomId::from(id);
    let limit = validate::page_limit(query.limit)?;
    let page = match (query.before, query.after) {
        (Some(_), Some(_)) => {
            return Err(Error::validation("before", "give before or after, not both").into());
        }
        (Some(b), None) => Page::Before(validate::seq("before", b)?),
        (None, Some(a)) => Page::After(validate::seq("after", a)?),
        (None, None) => Page::Latest,
    };
    member_access(&state, &room_id, &auth.user_id).await?;
    let (messages, has_more) = state.store.history(&room_id, page, limit).await?;
    Ok(Json(HistoryPage { messages, has_more }))
}

/// A message or the error that the outcome is.
fn message_of(outcome: Outcome) -> Result<(Message, bool), Error> {
    match outcome {
        Outcome::Created { message, created } => Ok((message, created)),
        Outcome::Edited { message } => Ok((message, false)),
        Outcome::Failed(e) => Err(e),
        Outcome::Deleted { .. } => Err(Error::internal("unexpected outcome")),
    }
}

/// Sends a message; answered once it is stored.
#[utoipa::path(
    post, path = "/rooms/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "the room's id")), request_body = SendBody,
    responses(
        (status = 201, description = "the stored message", body = Message),
        (status = 200, description = "the message an earlier send with this nonce stored", body = Message),
        InvalidRequest, Unauthorized, Forbidden, NotFound, TooLarge, Unprocessable, RateLimited, Unavailable
    )
)]
async fn send(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendBody>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let request = SendRequest {
        room_id: RoomId::from(id),
        body: body.body,
        nonce: body.nonce,
        reply_to: body.reply_to,
    };
    let command = admit_send(&state, &Sender::User(&auth.user_id), request).await?;
    let (message, created) = message_of(submit_and_wait(&state, command).await?)?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(message)))
}

/// Edits one of the caller's own messages.
#[utoipa::path(
    patch, path = "/rooms/{id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "the room's id"), ("message_id" = String, Path, description = "the message's id")), request_body = EditBody,
    responses(
        (status = 200, description = "the edited message", body = Message),
        InvalidRequest, Unauthorized, Forbidden, NotFound, TooLarge, Unprocessable, RateLimited, Unavailable
    )
)]
async fn edit(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((id, message_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<Message>> {
    let who = Sender::User(&auth.user_id);
    let command = admit_edit(&state, &who, RoomId::from(id), message_id.into(), body.body).await?;
    let (message, _) = message_of(submit_and_wait(&state, command).await?)?;
    Ok(Json(message))
}

/// Deletes a message: its author, or the room's owner or an admin.
#[utoipa::path(
    delete, path = "/rooms/{id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "the room's id"), ("message_id" = String, Path, description = "the message's id")),
    responses((status = 204, description = "deleted"), Unauthorized, Forbidden, NotFound, Unavailable)
)]
async fn remove(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let who = Sender::User(&auth.user_id);
    let command = admit_delete(&state, &who, RoomId::from(id), message_id.into()).await?;
    match submit_and_wait(&state, command).await? {
        Outcome::Failed(e) => Err(e.into()),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Moves the caller's read marker.
#[utoipa::path(
    post, path = "/rooms/{id}/read", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "the room's id")), request_body = ReadBody,
    responses(
        (status = 204, description = "marked"),
        InvalidRequest, Unauthorized, Forbidden, NotFound, TooLarge, Unprocessable
    )
)]
async fn read(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReadBody>,
) -> ApiResult<StatusCode> {
    let room_id = RoomId::from(id);
    let seq = validate::seq("seq", body.seq)?;
    member_access(&state, &room_id, &auth.user_id).await?;
    let at = state.store.mark_read(&room_id, &auth.user_id, seq).await?;
    events::read_moved(&state, &auth.user_id, &room_id, at, None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// 1–200 characters of words to search for.
    q: Option<String>,
    /// Only this room.
    room_id: Option<RoomId>,
}

/// Full-text search over the caller's rooms (up to 50, newest first).
#[utoipa::path(
    get, path = "/search", tag = "messages", operation_id = "search_messages", security(("bearer" = [])), params(SearchQuery),
    responses(
        (status = 200, description = "matching messages", body = MessageList),
        InvalidRequest, Unauthorized, Forbidden, NotFound, Unprocessable
    )
)]
async fn search(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<MessageList>> {
    let q = query.q.unwrap_or_default();
    if q.trim().is_empty() || q.chars().count() > 200 {
        return Err(Error::validation("q", "give 1 to 200 characters of words to search for").into());
    }
    if let Some(room_id) = &query.room_id {
        member_access(&state, room_id, &auth.user_id).await?;
    }
    let messages = state.store.search(&auth.user_id, &q, query.room_id.as_ref(), 50).await?;
    Ok(Json(MessageList { messages }))
}
