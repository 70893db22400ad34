//! Account operations: register, login, refresh, logout, recover, password change and sessions.
//! Ending sessions also tells the gateways (over the bus) to close those sessions' WebSockets.

use crate::secrets;
use crate::tokens::{Authenticated, TokenKeys, TokenPair};
use parlor_domain::bus::{BusEvent, Envelope, Topic};
use parlor_domain::model::{OwnUser, SessionInfo, SessionRecord};
use parlor_domain::ports::{Bus, NewUser, Rotation, Store};
use parlor_domain::{Error, Result, SessionId, Timestamp, UserId, validate};
use std::sync::Arc;
use std::time::Duration;

/// What a disabled account is told when it proves its credentials (403 `forbidden`; wrong
/// credentials stay 401, so nobody learns of the state of an account they cannot sign in to).
fn disabled() -> Error {
    Error::Forbidden("this account has been disabled; ask an administrator to enable it".into())
}

/// Token lifetimes and the signing secret.
#[derive(Clone)]
pub struct AccountSettings {
    /// The HS256 signing key.
    pub jwt_secret: Vec<u8>,
    /// Lifetime of an access token (15 minutes by default).
    pub access_ttl: Duration,
    /// Lifetime of a refresh token (30 days by default).
    pub refresh_ttl: Duration,
}

/// A new account, as `register` answers it.
#[derive(Debug)]
pub struct Registered {
    pub user: OwnUser,
    pub tokens: TokenPair,
    pub recovery_phrase: String,
}

/// A started session.
#[derive(Debug)]
pub struct SignedIn {
    pub user: OwnUser,
    pub tokens: TokenPair,
}

/// A disabled account, as `disable` answers it.
#[derive(Debug)]
pub struct Disabled {
    pub user: OwnUser,
    /// When it was disabled.
    pub since: Timestamp,
    /// Whether it was disabled already.
    pub already: bool,
    /// How many sessions ended now.
    pub sessions_ended: usize,
}

/// The users role in process.
pub struct Accounts {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    keys: TokenKeys,
    settings: AccountSettings,
    /// A hash verified against when the user does not exist, so that an unknown name takes as
    /// long to refuse as a wrong password.
    decoy_hash: String,
}

impl Accounts {
    /// The accounts service over a store, telling gateways through `bus` when sessions end.
    pub async fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, settings: AccountSettings) -> Result<Self> {
        let decoy_hash = secrets::hash(secrets::new_token()).await?;
        Ok(Self { store, bus, keys: TokenKeys::new(&settings.jwt_secret), settings, decoy_hash })
    }

    /// Creates an account and its first session.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
        email: Option<&str>,
        user_agent: Option<String>,
    ) -> Result<Registered> {
        let username = validate::username(username)?;
        validate::password("password", password)?;
        let display_name = match display_name {
            Some(d) => validate::display_name(d)?,
            None => username.clone(),
        };
        let email = match email {
            Some(e) => validate::email(e)?,
            None => None,
        };
        if self.store.user_by_username(&username).await?.is_some() {
            return Err(Error::Conflict("username is taken".into()));
        }
        let phrase = secrets::new_phrase()?;
        let (password_hash, phrase_hash) =
            tokio::try_join!(secrets::hash(password.to_owned()), secrets::hash(phrase.clone()))?;
        let record = self
            .store
            .create_user(NewUser {
                id: UserId::generate(),
                username,
                display_name,
                email,
                password_hash,
                phrase_hash,
                created_at: Timestamp::now(),
            })
            .await?;
        let tokens = self.start_session(&record.user.id, user_agent).await?;
        Ok(Registered { user: record.own(), tokens, recovery_phrase: phrase })
    }

    /// Starts a session for a username and password. Unknown users and wrong passwords get the
    /// same answer, in the same time.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        user_agent: Option<String>,
    ) -> Result<SignedIn> {
        let wrong = || Error::Unauthorized("wrong username or password".into());
        let record = self.store.user_by_username(username).await?;
        let hash = record.as_ref().map_or_else(|| self.decoy_hash.clone(), |r| r.password_hash.clone());
        let ok = secrets::verify(password.to_owned(), hash).await?;
        let Some(record) = record.filter(|_| ok) else { return Err(wrong()) };
        // Only a caller who knows the password learns that the account is disabled.
        if record.disabled_at.is_some() {
            return Err(disabled());
        }
        let tokens = self.start_session(&record.user.id, user_agent).await?;
        Ok(SignedIn { user: record.own(), tokens })
    }

    /// Rotates a refresh token. A token that was already rotated ends its session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let now = Timestamp::now();
        let new_token = secrets::new_token();
        let rotation = self
            .store
            .rotate_refresh(
                &secrets::token_hash(refresh_token),
                &secrets::token_hash(&new_token),
                now,
                self.refresh_expiry(now),
            )
            .await?;
        match rotation {
            Rotation::Rotated { session_id, user_id } => {
                let access_token =
                    self.keys.sign(&user_id, &session_id, now, self.settings.access_ttl.as_secs())?;
                Ok(TokenPair {
                    access_token,
                    refresh_token: new_token,
                    expires_in: self.settings.access_ttl.as_secs(),
                })
            }
            Rotation::Reused { session_id, user_id } => {
                tracing::warn!(%user_id, %session_id, "a spent refresh token was presented; session revoked");
                self.announce_ended(&user_id, vec![session_id]).await;
                Err(Error::Unauthorized("refresh token was already used; the session has been ended".into()))
            }
            Rotation::Invalid => Err(Error::Unauthorized("invalid or expired refresh token".into())),
        }
    }

    /// Ends the caller's session.
    pub async fn logout(&self, auth: &Authenticated) -> Result<()> {
        self.store.revoke_session(&auth.session_id, Timestamp::now()).await?;
        self.announce_ended(&auth.user_id, vec![auth.session_id.clone()]).await;
        Ok(())
    }

    /// Resets the password with the recovery phrase; every earlier session ends and a new phrase
    /// replaces the old one.
    pub async fn recover(
        &self,
        username: &str,
        phrase: &str,
        new_password: &str,
        user_agent: Option<String>,
    ) -> Result<Registered> {
        validate::password("new_password", new_password)?;
        let wrong = || Error::Unauthorized("wrong username or recovery phrase".into());
        let record = self.store.user_by_username(username).await?;
        let typed = secrets::normalise_phrase(phrase);
        let hash = record.as_ref().map_or_else(|| self.decoy_hash.clone(), |r| r.phrase_hash.clone());
        // Verify even a malformed phrase, so timing does not tell which part was wrong.
        let ok = secrets::verify(typed.clone().unwrap_or_else(|| phrase.to_owned()), hash).await?;
        let Some(record) = record.filter(|_| ok && typed.is_some()) else { return Err(wrong()) };
        if record.disabled_at.is_some() {
            return Err(disabled());
        }
        let new_phrase = secrets::new_phrase()?;
        let (password_hash, phrase_hash) =
            tokio::try_join!(secrets::hash(new_password.to_owned()), secrets::hash(new_phrase.clone()))?;
        self.store.set_credentials(&record.user.id, &password_hash, &phrase_hash).await?;
        let ended = self.store.revoke_user_sessions(&record.user.id, None, Timestamp::now()).await?;
        self.announce_ended(&record.user.id, ended).await;
        let tokens = self.start_session(&record.user.id, user_agent).await?;
        Ok(Registered { user: record.own(), tokens, recovery_phrase: new_phrase })
    }

    /// Sets a user's password from the command line; every session of the user ends.
    pub async fn reset_password(&self, username: &str, new_password: &str) -> Result<OwnUser> {
        validate::password("password", new_password)?;
        let record = self
            .store
            .user_by_username(username)
            .await?
            .ok_or_else(|| Error::NotFound("no such user".into()))?;
        let hash = secrets::hash(new_password.to_owned()).await?;
        self.store.set_password_hash(&record.user.id, &hash).await?;
        let ended = self.store.revoke_user_sessions(&record.user.id, None, Timestamp::now()).await?;
        self.announce_ended(&record.user.id, ended).await;
        Ok(record.own())
    }

    /// Disables an account from the command line: it can no longer sign in, refresh or recover,
    /// and every session ends at once (gateways close their WebSockets).
    pub async fn disable(&self, username: &str) -> Result<Disabled> {
        let before = self.by_username(username).await?;
        let record = self
            .store
            .set_disabled(&before.user.id, Some(Timestamp::now()))
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))?;
        let ended = self.store.revoke_user_sessions(&record.user.id, None, Timestamp::now()).await?;
        let sessions_ended = ended.len();
        self.announce_ended(&record.user.id, ended).await;
        Ok(Disabled {
            user: record.own(),
            since: record.disabled_at.unwrap_or_else(Timestamp::now),
            already: before.disabled_at.is_some(),
            sessions_ended,
        })
    }

    /// Enables a disabled account again: its password and recovery phrase work as before (the
    /// sessions ended by `disable` stay ended).
    pub async fn enable(&self, username: &str) -> Result<OwnUser> {
        let record = self.by_username(username).await?;
        self.store
            .set_disabled(&record.user.id, None)
            .await?
            .map(|r| r.own())
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))
    }

    async fn by_username(&self, username: &str) -> Result<parlor_domain::model::UserRecord> {
        self.store
            .user_by_username(username)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))
    }

    /// Changes the password; every other session ends.
    pub async fn change_password(
        &self,
        auth: &Authenticated,
        current: &str,
        new_password: &str,
    ) -> Result<()> {
        validate::password("new_password", new_password)?;
        let record = self
            .store
            .user_by_id(&auth.user_id)
            .await?
            .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
        if !secrets::verify(current.to_owned(), record.password_hash).await? {
            return Err(Error::Unauthorized("wrong current password".into()));
        }
        let hash = secrets::hash(new_password.to_owned()).await?;
        self.store.set_password_hash(&auth.user_id, &hash).await?;
        let ended =
            self.store.revoke_user_sessions(&auth.user_id, Some(&auth.session_id), Timestamp::now()).await?;
        self.announce_ended(&auth.user_id, ended).await;
        Ok(())
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, auth: &Authenticated) -> Result<Vec<SessionInfo>> {
        Ok(self
            .store
            .active_sessions(&auth.user_id)
            .await?
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == auth.session_id,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                user_agent: s.user_agent,
            })
            .collect())
    }

    /// Ends one of the caller's sessions.
    pub async fn revoke(&self, auth: &Authenticated, session_id: &SessionId) -> Result<()> {
        let session = self.store.session(session_id).await?;
        match session {
            Some(s) if s.user_id == auth.user_id && s.revoked_at.is_none() => {
                self.store.revoke_session(session_id, Timestamp::now()).await?;
                self.announce_ended(&auth.user_id, vec![session_id.clone()]).await;
                Ok(())
            }
            _ => Err(Error::NotFound("session not found".into())),
        }
    }

    /// Checks an access token: signature, expiry, and that its session has not ended.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated> {
        let auth = self.keys.check(token)?;
        match self.store.session(&auth.session_id).await? {
            Some(s) if s.revoked_at.is_none() && s.user_id == auth.user_id => Ok(auth),
            _ => Err(Error::Unauthorized("the session has ended".into())),
        }
    }

    /// A token that unsubscribes `user_id` from e-mail without logging in: an HMAC of the id with
    /// the signing key, so it cannot be forged and needs no storage.
    pub fn unsubscribe_token(&self, user_id: &UserId) -> String {
        crate::secrets::sign(&self.settings.jwt_secret, &format!("unsubscribe:{user_id}"), user_id.as_str())
    }

    /// Unsubscribes the user a token names.
    pub async fn unsubscribe(&self, token: &str) -> Result<()> {
        let user_id = crate::secrets::verify_signed(&self.settings.jwt_secret, "unsubscribe:", token)
            .ok_or_else(|| Error::Unauthorized("invalid unsubscribe link".into()))?;
        let patch =
            parlor_domain::ports::ProfilePatch { email_notifications: Some(false), ..Default::default() };
        self.store.update_profile(&UserId::from(user_id), patch).await.map(|_| ())
    }

    /// Notes that a session was used now (a WebSocket opened).
    pub async fn touch(&self, auth: &Authenticated) -> Result<()> {
        self.store.touch_session(&auth.session_id, Timestamp::now()).await
    }

    async fn start_session(&self, user_id: &UserId, user_agent: Option<String>) -> Result<TokenPair> {
        let now = Timestamp::now();
        let session_id = SessionId::generate();
        let refresh_token = secrets::new_token();
        let user_agent = user_agent.map(|ua| ua.chars().take(256).collect());
        self.store
            .create_session(
                SessionRecord {
                    id: session_id.clone(),
                    user_id: user_id.clone(),
                    created_at: now,
                    last_seen_at: now,
                    user_agent,
                    revoked_at: None,
                },
                &secrets::token_hash(&refresh_token),
                self.refresh_expiry(now),
            )
            .await?;
        // An account disabled while this session was being made: `disable` ends the sessions it
        // finds after marking the account, so either it ended this one or this check sees the mark.
        let refused = self.store.user_by_id(user_id).await?.is_none_or(|r| r.disabled_at.is_some());
        if refused {
            self.store.revoke_session(&session_id, Timestamp::now()).await?;
            return Err(disabled());
        }
        let access_token = self.keys.sign(user_id, &session_id, now, self.settings.access_ttl.as_secs())?;
        Ok(TokenPair { access_token, refresh_token, expires_in: self.settings.access_ttl.as_secs() })
    }

    fn refresh_expiry(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(self.settings.refresh_ttl.as_millis().min(i64::MAX as u128) as i64)
    }

    /// Tells the gateways to close the connections of ended sessions. The sessions are already
    /// revoked in the store, so a lost announcement only delays the close until the next check.
    async fn announce_ended(&self, user_id: &UserId, session_ids: Vec<SessionId>) {
        if session_ids.is_empty() {
            return;
        }
        let envelope = Envelope {
            topic: Topic::User(user_id.clone()),
            event: BusEvent::SessionsEnded { user_id: user_id.clone(), session_ids },
        };
        if let Err(e) = self.bus.publish(Arc::new(envelope)).await {
            tracing::warn!(error = %e, "could not announce ended sessions");
        }
    }
}
