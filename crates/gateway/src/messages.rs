//! `/api/v1/rooms/{id}/messages`, read markers and `/api/v1/search`. Sends, edits and deletes go
//! through the queue to the worker like WebSocket sends; the handler waits for the outcome.

use crate::error::ApiResult;
use crate::events;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::pending::submit_and_wait;
use crate::rooms::member_access;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use parlor_domain::model::Message;
use parlor_domain::ports::Page;
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, MessageId, RoomId, validate};
use serde::Deserialize;
use serde_json::json;

/// The message routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms/{id}/messages", get(history).post(send))
        .route("/rooms/{id}/messages/{message_id}", patch(edit).delete(remove))
        .route("/rooms/{id}/read", post(read))
        .route("/search", get(search))
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
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
    Ok(Json(json!({ "messages": messages, "has_more": has_more })).into_response())
}

#[derive(Deserialize)]
struct SendBody {
    body: String,
    nonce: Option<String>,
    reply_to: Option<MessageId>,
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

async fn send(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendBody>,
) -> ApiResult<(StatusCode, Json<Message>)> {
    let room_id = RoomId::from(id);
    validate::body(&body.body)?;
    if let Some(nonce) = &body.nonce {
        validate::nonce(nonce)?;
    }
    member_access(&state, &room_id, &auth.user_id).await?;
    state.limits.send(&auth.user_id)?;
    let command = Command::Create {
        room_id,
        author_id: auth.user_id,
        body: body.body,
        nonce: body.nonce,
        reply_to: body.reply_to,
    };
    let (message, created) = message_of(submit_and_wait(&state, command).await?)?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(message)))
}

#[derive(Deserialize)]
struct EditBody {
    body: String,
}

async fn edit(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((id, message_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<Message>> {
    let room_id = RoomId::from(id);
    validate::body(&body.body)?;
    member_access(&state, &room_id, &auth.user_id).await?;
    state.limits.send(&auth.user_id)?;
    let command =
        Command::Edit { room_id, message_id: message_id.into(), author_id: auth.user_id, body: body.body };
    let (message, _) = message_of(submit_and_wait(&state, command).await?)?;
    Ok(Json(message))
}

async fn remove(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room_id = RoomId::from(id);
    member_access(&state, &room_id, &auth.user_id).await?;
    let command = Command::Delete { room_id, message_id: message_id.into(), actor_id: auth.user_id };
    match submit_and_wait(&state, command).await? {
        Outcome::Failed(e) => Err(e.into()),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[derive(Deserialize)]
struct ReadBody {
    seq: i64,
}

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

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    room_id: Option<RoomId>,
}

async fn search(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let q = query.q.unwrap_or_default();
    if q.trim().is_empty() || q.chars().count() > 200 {
        return Err(Error::validation("q", "give 1 to 200 characters of words to search for").into());
    }
    if let Some(room_id) = &query.room_id {
        member_access(&state, room_id, &auth.user_id).await?;
    }
    let messages = state.store.search(&auth.user_id, &q, query.room_id.as_ref(), 50).await?;
    Ok(Json(json!({ "messages": messages })))
}
