//! Who may do what in a room. Pure functions over roles, so every adapter and role applies the
//! same rules.

use crate::Error;
use crate::model::{Role, RoomKind, Visibility};

/// The error a non-member gets for touching a room: a public room admits it exists (403), a
/// private or direct one does not (404).
pub fn not_a_member(kind: RoomKind, visibility: Visibility) -> Error {
    if kind == RoomKind::Group && visibility == Visibility::Public {
        Error::Forbidden("you are not a member of this room".into())
    } else {
        Error::NotFound("room not found".into())
    }
}

/// Whether a non-member may see a room's record at all.
pub fn visible_to_non_member(kind: RoomKind, visibility: Visibility) -> bool {
    kind == RoomKind::Group && visibility == Visibility::Public
}

/// Whether `actor` (with `actor_role` in the room) may delete a message written by the author.
pub fn can_delete_message(actor_is_author: bool, actor_role: Option<Role>) -> bool {
    actor_is_author || actor_role.is_some_and(Role::is_manager)
}

/// Whether a member with `role` may add someone with `new_role` to a room.
pub fn can_invite(visibility: Visibility, role: Role, new_role: Role) -> bool {
    match visibility {
        Visibility::Private => role.is_manager() && (new_role != Role::Owner) && (new_role <= role),
        Visibility::Public => {
            new_role == Role::Member || (role.is_manager() && new_role <= role && new_role != Role::Owner)
        }
    }
}

/// Whether `actor_role` may remove a member with `target_role` (anyone may remove themself).
pub fn can_kick(actor_role: Role, target_role: Role) -> bool {
    actor_role.is_manager() && actor_role > target_role
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_cannot_kick_owners_or_each_other() {
        assert!(can_kick(Role::Owner, Role::Admin));
        assert!(can_kick(Role::Admin, Role::Member));
        assert!(!can_kick(Role::Admin, Role::Admin));
        assert!(!can_kick(Role::Admin, Role::Owner));
        assert!(!can_kick(Role::Member, Role::Member));
    }

    #[test]
    fn members_invite_only_members_and_only_to_public_rooms() {
        assert!(can_invite(Visibility::Public, Role::Member, Role::Member));
        assert!(!can_invite(Visibility::Public, Role::Member, Role::Admin));
        assert!(!can_invite(Visibility::Private, Role::Member, Role::Member));
        assert!(can_invite(Visibility::Private, Role::Admin, Role::Member));
        assert!(!can_invite(Visibility::Private, Role::Owner, Role::Owner));
    }
}
