//! In-process presence: a count of open connections per user.

use async_trait::async_trait;
use parlor_domain::ports::Presence;
use parlor_domain::{Error, Result, UserId};
use std::collections::HashMap;
use std::sync::Mutex;

/// Who is online in this process.
#[derive(Default)]
pub struct LocalPresence {
    /// Open connections per online user; a user with none is absent.
    connections: Mutex<HashMap<UserId, usize>>,
}

impl LocalPresence {
    /// Nobody online.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn connected(&self, user_id: &UserId) -> Result<bool> {
        let mut map = self.connections.lock().map_err(|_| Error::internal("presence lock poisoned"))?;
        let n = map.entry(user_id.clone()).or_insert(0);
        *n += 1;
        Ok(*n == 1)
    }

    async fn disconnected(&self, user_id: &UserId) -> Result<bool> {
        let mut map = self.connections.lock().map_err(|_| Error::internal("presence lock poisoned"))?;
        match map.get_mut(user_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Ok(false)
            }
            Some(_) => {
                map.remove(user_id);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn online(&self, user_ids: &[UserId]) -> Result<Vec<bool>> {
        let map = self.connections.lock().map_err(|_| Error::internal("presence lock poisoned"))?;
        Ok(user_ids.iter().map(|u| map.contains_key(u)).collect())
    }
}
