//! `/api/v1/rooms` and `/api/v1/dms`: rooms, the directory, membership and direct rooms.

use crate::error::ApiResult;
use crate::events;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use parlor_domain::model::{Member, Role, Room, RoomKind, Visibility};
use parlor_domain::ports::{NewRoom, RoomAccess};
use parlor_domain::{Error, Result, RoomId, Timestamp, UserId, permissions, validate};
use serde::Deserialize;
use serde_json::{Value, json};

/// The routes under `/rooms` and `/dms`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms", post(create).get(mine))
        .route("/rooms/public", get(directory))
        .route("/rooms/{id}", get(show).patch(update))
        .route("/rooms/{id}/join", post(join))
        .route("/rooms/{id}/leave", post(leave))
        .route("/rooms/{id}/members", get(members).post(add_member))
        .route("/rooms/{id}/members/{user_id}", delete(remove_member))
        .route("/dms", post(direct))
}

/// The room and the caller's role, or the error a non-member gets (403 public, 404 otherwise).
pub async fn member_access(state: &AppState, room_id: &RoomId, user_id: &UserId) -> Result<(Room, Role)> {
    let access = state
        .store
        .room_access(room_id, user_id)
        .await?
        .ok_or_else(|| Error::NotFound("room not found".into()))?;
    match access.role {
        Some(role) => Ok((access.room, role)),
        None => Err(permissions::not_a_member(access.room.kind, access.room.visibility)),
    }
}

/// The room if the caller may know it exists.
async fn visible(state: &AppState, room_id: &RoomId, user_id: &UserId) -> Result<RoomAccess> {
    let not_found = || Error::NotFound("room not found".into());
    let access = state.store.room_access(room_id, user_id).await?.ok_or_else(not_found)?;
    if access.role.is_none() && !permissions::visible_to_non_member(access.room.kind, access.room.visibility)
    {
        return Err(not_found());
    }
    Ok(access)
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    topic: Option<String>,
    visibility: Option<Visibility>,
}

async fn create(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Room>)> {
    let name = validate::room_name(&body.name)?;
    let topic = body.topic.as_deref().map(validate::topic).transpose()?.filter(|t| !t.is_empty());
    let room = state
        .store
        .create_room(NewRoom {
            id: RoomId::generate(),
            name,
            topic,
            visibility: body.visibility.unwrap_or(Visibility::Public),
            owner_id: auth.user_id.clone(),
            created_at: Timestamp::now(),
        })
        .await?;
    if let Some(owner) = state.store.user_by_id(&auth.user_id).await? {
        events::member_joined(&state, &room.id, &owner.user).await;
    }
    Ok((StatusCode::CREATED, Json(room)))
}

async fn mine(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "rooms": state.store.user_rooms(&auth.user_id).await? })))
}

#[derive(Deserialize)]
struct DirectoryQuery {
    q: Option<String>,
}

async fn directory(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiQuery(query): ApiQuery<DirectoryQuery>,
) -> ApiResult<Json<Value>> {
    let q = query.q.unwrap_or_default();
    if q.chars().count() > 100 {
        return Err(Error::validation("q", "q must be at most 100 characters").into());
    }
    Ok(Json(json!({ "rooms": state.store.public_rooms(&q, 100).await? })))
}

async fn show(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Room>> {
    Ok(Json(visible(&state, &id.into(), &auth.user_id).await?.room))
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    topic: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<Room>> {
    let room_id = RoomId::from(id);
    let (room, role) = member_access(&state, &room_id, &auth.user_id).await?;
    if room.kind == RoomKind::Direct {
        return Err(Error::Forbidden("a direct room has no name or topic".into()).into());
    }
    if !role.is_manager() {
        return Err(Error::Forbidden("only the owner or an admin may change the room".into()).into());
    }
    let name = body.name.as_deref().map(validate::room_name).transpose()?;
    // An empty topic clears it, as at creation.
    let topic =
        body.topic.as_deref().map(validate::topic).transpose()?.map(|t| Some(t).filter(|t| !t.is_empty()));
    let room = state.store.update_room(&room_id, name, topic).await?;
    events::room_updated(&state, &room).await;
    Ok(Json(room))
}

async fn join(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Room>> {
    let room_id = RoomId::from(id);
    let access = visible(&state, &room_id, &auth.user_id).await?;
    if access.role.is_some() {
        return Err(Error::Conflict("already a member".into()).into());
    }
    state.store.add_member(&room_id, &auth.user_id, Role::Member, Timestamp::now()).await?;
    if let Some(user) = state.store.user_by_id(&auth.user_id).await? {
        events::member_joined(&state, &room_id, &user.user).await;
    }
    let room = visible(&state, &room_id, &auth.user_id).await?.room;
    Ok(Json(room))
}

async fn leave(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let room_id = RoomId::from(id);
    let (room, _) = member_access(&state, &room_id, &auth.user_id).await?;
    if room.kind == RoomKind::Direct {
        return Err(Error::Forbidden("a direct room cannot be left".into()).into());
    }
    if state.store.remove_member(&room_id, &auth.user_id).await? {
        events::member_left(&state, &room_id, &auth.user_id).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let room_id = RoomId::from(id);
    member_access(&state, &room_id, &auth.user_id).await?;
    Ok(Json(json!({ "members": state.store.members(&room_id).await? })))
}

#[derive(Deserialize)]
struct AddMemberBody {
    user_id: UserId,
    role: Option<Role>,
}

async fn add_member(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddMemberBody>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let room_id = RoomId::from(id);
    let (room, role) = member_access(&state, &room_id, &auth.user_id).await?;
    let new_role = body.role.unwrap_or(Role::Member);
    if room.kind == RoomKind::Direct {
        return Err(Error::Forbidden("a direct room has exactly two members".into()).into());
    }
    if !permissions::can_invite(room.visibility, role, new_role) {
        return Err(Error::Forbidden("you may not add this member with this role".into()).into());
    }
    let user = state
        .store
        .user_by_id(&body.user_id)
        .await?
        .ok_or_else(|| Error::NotFound("user not found".into()))?;
    let now = Timestamp::now();
    state.store.add_member(&room_id, &body.user_id, new_role, now).await?;
    events::member_joined(&state, &room_id, &user.user).await;
    Ok((StatusCode::CREATED, Json(Member { user: user.user, role: new_role, joined_at: now })))
}

async fn remove_member(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room_id = RoomId::from(id);
    let target = UserId::from(user_id);
    let (room, role) = member_access(&state, &room_id, &auth.user_id).await?;
    if room.kind == RoomKind::Direct {
        return Err(Error::Forbidden("a direct room has exactly two members".into()).into());
    }
    if target != auth.user_id {
        let target_role = state
            .store
            .room_access(&room_id, &target)
            .await?
            .and_then(|a| a.role)
            .ok_or_else(|| Error::NotFound("not a member of this room".into()))?;
        if !permissions::can_kick(role, target_role) {
            return Err(Error::Forbidden("only the owner or an admin may remove this member".into()).into());
        }
    }
    if state.store.remove_member(&room_id, &target).await? {
        events::member_left(&state, &room_id, &target).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct DirectBody {
    user_id: UserId,
}

async fn direct(
    State(state): State<AppState>,
    Auth(auth): Auth,
    ApiJson(body): ApiJson<DirectBody>,
) -> ApiResult<Json<Room>> {
    if body.user_id == auth.user_id {
        return Err(Error::validation("user_id", "a direct room needs another user").into());
    }
    let other = state
        .store
        .user_by_id(&body.user_id)
        .await?
        .ok_or_else(|| Error::NotFound("user not found".into()))?;
    let (room, created) = state.store.direct_room(&auth.user_id, &other.user.id, Timestamp::now()).await?;
    if created {
        if let Some(me) = state.store.user_by_id(&auth.user_id).await? {
            events::member_joined(&state, &room.id, &me.user).await;
        }
        events::member_joined(&state, &room.id, &other.user).await;
    }
    Ok(Json(room))
}
