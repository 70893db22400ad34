//! `/api/v1/rooms` and `/api/v1/dms`: rooms, the directory, membership and direct rooms.

use crate::error::ApiResult;
use crate::events;
use crate::extract::{ApiJson, ApiQuery, Auth};
use crate::openapi::{Conflict, Forbidden, InvalidRequest, NotFound, TooLarge, Unauthorized, Unprocessable};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parlor_domain::model::{Member, Role, Room, RoomKind, Visibility};
use parlor_domain::ports::{NewRoom, RoomAccess};
use parlor_domain::requests::{AddMemberBody, CreateBody, DirectBody, UpdateBody};
use parlor_domain::{Error, Result, RoomId, Timestamp, UserId, permissions, validate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes under `/rooms` and `/dms`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, mine))
        .routes(routes!(directory))
        .routes(routes!(show, update))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(direct))
}

/// Rooms.
#[derive(Serialize, ToSchema)]
struct RoomList {
    rooms: Vec<Room>,
}

/// A room's members.
#[derive(Serialize, ToSchema)]
struct MemberList {
    members: Vec<Member>,
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

/// Creates a group room; the creator is its owner.
#[utoipa::path(
    post, path = "/rooms", tag = "rooms", security(("bearer" = [])), request_body = CreateBody,
    responses(
        (status = 201, description = "the room", body = Room),
        InvalidRequest, Unauthorized, TooLarge, Unprocessable
    )
)]
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

/// The caller's rooms with read markers and unread counts.
#[utoipa::path(
    get, path = "/rooms", tag = "rooms", security(("bearer" = [])),
    responses((status = 200, description = "the caller's rooms", body = RoomList), Unauthorized)
)]
async fn mine(State(state): State<AppState>, Auth(auth): Auth) -> ApiResult<Json<RoomList>> {
    Ok(Json(RoomList { rooms: state.store.user_rooms(&auth.user_id).await? }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DirectoryQuery {
    /// Part of the name, matched regardless of case; every public room when absent.
    q: Option<String>,
}

/// The public room directory (up to 100).
#[utoipa::path(
    get, path = "/rooms/public", tag = "rooms", security(("bearer" = [])), params(DirectoryQuery),
    responses((status = 200, description = "public rooms", body = RoomList), InvalidRequest, Unauthorized, Unprocessable)
)]
async fn directory(
    State(state): State<AppState>,
    Auth(_caller): Auth,
    ApiQuery(query): ApiQuery<DirectoryQuery>,
) -> ApiResult<Json<RoomList>> {
    let q = query.q.unwrap_or_default();
    if q.chars().count() > 100 {
        return Err(Error::validation("q", "q must be at most 100 characters").into());
    }
    Ok(Json(RoomList { rooms: state.store.public_rooms(&q, 100).await? }))
}

/// A room: any public one, or one the caller belongs to.
#[utoipa::path(
    get, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])), params(("id" = String, Path, description = "the room's id")),
    responses((status = 200, description = "the room", body = Room), Unauthorized, NotFound)
)]
async fn show(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Room>> {
    Ok(Json(visible(&state, &id.into(), &auth.user_id).await?.room))
}

/// Renames a room or changes its topic (owner or admin).
#[utoipa::path(
    patch, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])), params(("id" = String, Path, description = "the room's id")), request_body = UpdateBody,
    responses(
        (status = 200, description = "the room", body = Room),
        InvalidRequest, Unauthorized, Forbidden, NotFound, TooLarge, Unprocessable
    )
)]
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

/// Joins a public room.
#[utoipa::path(
    post, path = "/rooms/{id}/join", tag = "rooms", security(("bearer" = [])), params(("id" = String, Path, description = "the room's id")),
    responses((status = 200, description = "the room", body = Room), Unauthorized, NotFound, Conflict)
)]
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

/// Leaves a group room.
#[utoipa::path(
    post, path = "/rooms/{id}/leave", tag = "rooms", security(("bearer" = [])), params(("id" = String, Path, description = "the room's id")),
    responses((status = 204, description = "left"), Unauthorized, Forbidden, NotFound)
)]
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

/// A room's members with their roles.
#[utoipa::path(
    get, path = "/rooms/{id}/members", tag = "rooms", security(("bearer" = [])), params(("id" = String, Path, description = "the room's id")),
    responses((status = 200, description = "members", body = MemberList), Unauthorized, Forbidden, NotFound)
)]
async fn members(
    State(state): State<AppState>,
    Auth(auth): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberList>> {
    let room_id = RoomId::from(id);
    member_access(&state, &room_id, &auth.user_id).await?;
    Ok(Json(MemberList { members: state.store.members(&room_id).await? }))
}

/// Adds a user to a room (to a private room: owner or admin only).
#[utoipa::path(
    post, path = "/rooms/{id}/members", tag = "rooms", security(("bearer" = [])), params(("id" = String, Path, description = "the room's id")),
    request_body = AddMemberBody,
    responses(
        (status = 201, description = "the new member", body = Member),
        InvalidRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, Unprocessable
    )
)]
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

/// Removes a member; anyone may remove themselves.
#[utoipa::path(
    delete, path = "/rooms/{id}/members/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "the room's id"), ("user_id" = String, Path, description = "the member's user id")),
    responses((status = 204, description = "removed"), Unauthorized, Forbidden, NotFound)
)]
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

/// The direct room with another user, created on first use.
#[utoipa::path(
    post, path = "/dms", tag = "rooms", security(("bearer" = [])), request_body = DirectBody,
    responses(
        (status = 200, description = "the direct room", body = Room),
        InvalidRequest, Unauthorized, NotFound, TooLarge, Unprocessable
    )
)]
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
