//! The members' OAuth2 tokens over their lifetime: storing them after the code exchange,
//! handing out a valid access token, refreshing before expiry, and noticing when only a new
//! authorization can help.
//!
//! Open Humans rotates the refresh token on every refresh with no grace period: the first
//! refresh spends it, and a second refresh with the same token gets `invalid_grant`. Two
//! refreshes of one member must therefore never overlap, or the loser locks the member out.
//! Two mechanisms guarantee it:
//!
//! - inside one process, a per-member async mutex: the first caller refreshes, the others wait
//!   and then find the new token (the row's `token_version` has moved on);
//! - across processes sharing the database, a lease taken by compare-and-swap on
//!   `token_version`: only the instance whose `UPDATE` matched calls the token endpoint; the
//!   others poll the row until the version changes. A lease outlives the HTTP timeout, and an
//!   expired lease (its holder died) can be taken over.
//!
//! One failure cannot be repaired by ohkit: when the platform commits a rotation but the answer
//! is lost (a timeout or a 502 after the commit), the old refresh token is already spent and
//! the new one never arrived. The refresh reports [`TokenError::Upstream`]; the next attempt
//! gets `invalid_grant` and the member is marked as needing to authorize again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use sqlx::Row;

use crate::crypto::{CryptoError, TokenCipher};
use crate::members;
use crate::openhumans::{OhClient, OhError, TokenSet};
use crate::storage::{Db, StorageError};

/// An access token that expires within this margin is refreshed before it is handed out.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long a refresh lease lasts; longer than the HTTP timeout of the token request.
const LEASE_SECONDS: i64 = 30;

/// How often a waiting instance re-reads the row.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a caller waits for another instance's refresh before giving up: as long as the
/// lease, so a refresh that is still within its term is never abandoned.
const WAIT_LIMIT: Duration = Duration::from_secs(LEASE_SECONDS.unsigned_abs());

/// Why no token could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Open Humans no longer accepts the member's tokens: they must authorize ohkit again.
    #[error("the member must authorize the project again")]
    NeedsReauthorization,
    /// ohkit has no member with this ID.
    #[error("unknown member")]
    UnknownMember,
    /// Open Humans could not refresh the token right now (never an authorization problem).
    #[error("the token could not be refreshed: {0}")]
    Upstream(OhError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored token could not be decrypted.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl From<sqlx::Error> for TokenError {
    fn from(err: sqlx::Error) -> Self {
        Self::Storage(StorageError::Sqlx(err))
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Members whose tokens were due.
    pub due: u64,
    /// Members this sweep refreshed.
    pub refreshed: u64,
    /// Members refreshed meanwhile by another caller or instance.
    pub already_fresh: u64,
    /// Members found to need a new authorization.
    pub needs_reauth: u64,
    /// Members whose refresh failed for now (to be retried).
    pub failed: u64,
}

struct Inner {
    db: Db,
    cipher: TokenCipher,
    client: OhClient,
    instance: String,
    locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    refreshes: AtomicU64,
}

/// Hands out valid access tokens and refreshes them, one refresh per member at a time.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager").field("instance", &self.inner.instance).finish()
    }
}

/// The token columns of one member.
struct TokenRow {
    access_token: Option<Vec<u8>>,
    refresh_token: Option<Vec<u8>>,
    expires_at: i64,
    version: i64,
    lease_owner: Option<String>,
    lease_until: i64,
    needs_reauth: bool,
}

/// How a refresh attempt ended for the caller.
enum Outcome {
    /// This call refreshed; here is the new access token.
    Refreshed(String),
    /// Someone else refreshed meanwhile; here is their access token.
    AlreadyFresh(String),
}

impl Outcome {
    fn token(self) -> String {
        match self {
            Self::Refreshed(token) | Self::AlreadyFresh(token) => token,
        }
    }
}

impl TokenManager {
    /// A manager over the members table; it names itself with a random instance ID for
    /// refresh leases.
    pub fn new(db: Db, cipher: TokenCipher, client: OhClient) -> Self {
        let instance = format!("{:016x}", rand::random::<u64>());
        Self {
            inner: Arc::new(Inner {
                db,
                cipher,
                client,
                instance,
                locks: DashMap::new(),
                refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// Records a completed authorization in one statement: creates the member, or updates their
    /// username and sources, together with the tokens of the code exchange (clearing any need to
    /// reauthorize). One statement, so that a failure leaves neither a member without tokens nor
    /// a new snapshot beside old tokens.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn store_enrollment(
        &self,
        project_member_id: &str,
        username: Option<&str>,
        sources_shared: &[String],
        tokens: &TokenSet,
    ) -> Result<(), TokenError> {
        let now = unix_now();
        let (access, refresh, expires_at) = self.seal(project_member_id, tokens, now);
        let sources = members::encode_sources(sources_shared);
        sqlx::query(
            "INSERT INTO members (project_member_id, username, sources_shared, access_token, \
             refresh_token, token_expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (project_member_id) DO UPDATE SET username = excluded.username, \
             sources_shared = excluded.sources_shared, access_token = excluded.access_token, \
             refresh_token = excluded.refresh_token, token_expires_at = excluded.token_expires_at, \
             token_version = members.token_version + 1, needs_reauth = 0, \
             refresh_lease_owner = NULL, refresh_lease_until = 0, updated_at = excluded.updated_at",
        )
        .bind(project_member_id)
        .bind(username)
        .bind(&sources)
        .bind(access)
        .bind(refresh)
        .bind(expires_at)
        .bind(now)
        .execute(self.inner.db.pool())
        .await?;
        Ok(())
    }

    /// A valid access token for the member, refreshed first when it expires within
    /// [`REFRESH_MARGIN`].
    ///
    /// # Errors
    ///
    /// [`TokenError::NeedsReauthorization`] when the member must authorize again;
    /// [`TokenError::Upstream`] when a needed refresh failed for now; storage and crypto errors.
    pub async fn access_token(&self, project_member_id: &str) -> Result<String, TokenError> {
        let row = self.load(project_member_id).await?;
        let access = usable(&row)?;
        if row.expires_at - unix_now() > margin_seconds() {
            return Ok(self.inner.cipher.decrypt(project_member_id, access)?);
        }
        Ok(self.refresh_from(project_member_id, row.version).await?.token())
    }

    /// Refreshes now, whatever the stored expiry says (after the API answered
    /// "Expired token."). If another caller refreshed in the meantime, their token is returned.
    ///
    /// # Errors
    ///
    /// As for [`TokenManager::access_token`].
    pub async fn refresh_now(&self, project_member_id: &str) -> Result<String, TokenError> {
        let row = self.load(project_member_id).await?;
        usable(&row)?;
        Ok(self.refresh_from(project_member_id, row.version).await?.token())
    }

    /// A token to try again with after the API answered "Expired token." to `rejected`: the
    /// stored one when another caller or instance has replaced `rejected` meanwhile, otherwise a
    /// fresh one from a refresh. Comparing with the rejected token, rather than refreshing
    /// blindly, keeps a second refresh from revoking the token another request has just got.
    ///
    /// # Errors
    ///
    /// As for [`TokenManager::access_token`].
    pub async fn after_expired(
        &self,
        project_member_id: &str,
        rejected: &str,
    ) -> Result<String, TokenError> {
        let row = self.load(project_member_id).await?;
        let access = usable(&row)?;
        let current = self.inner.cipher.decrypt(project_member_id, access)?;
        if current != rejected {
            return self.access_token(project_member_id).await;
        }
        Ok(self.refresh_from(project_member_id, row.version).await?.token())
    }

    /// Handles the API's "Invalid token." answer to `rejected`. When the stored token is still
    /// `rejected`, Open Humans has revoked the authorization: the member is marked as needing to
    /// authorize again and `None` is returned. When the stored token has changed (a refresh
    /// elsewhere rotated `rejected` away while the call was in flight), nothing is marked and the
    /// current token is returned to try again with.
    ///
    /// # Errors
    ///
    /// [`TokenError::UnknownMember`]; storage and crypto errors; those of
    /// [`TokenManager::access_token`] when a newer token is handed out.
    pub async fn after_invalid(
        &self,
        project_member_id: &str,
        rejected: &str,
    ) -> Result<Option<String>, TokenError> {
        let row = self.load(project_member_id).await?;
        if row.needs_reauth {
            return Ok(None);
        }
        if let Some(access) = row.access_token.as_deref()
            && self.inner.cipher.decrypt(project_member_id, access)? != rejected
        {
            return self.access_token(project_member_id).await.map(Some);
        }
        if !self.mark_needs_reauth_at(project_member_id, row.version).await? {
            return self.access_token(project_member_id).await.map(Some);
        }
        tracing::info!(member = project_member_id, "member marked as needing reauthorization");
        Ok(None)
    }

    /// Refreshes every member whose access token expires within `within` and who can still be
    /// refreshed.
    ///
    /// # Errors
    ///
    /// Only when the list of due members cannot be read; failures of single members are
    /// counted in the report.
    pub async fn sweep(&self, within: Duration) -> Result<SweepReport, TokenError> {
        let horizon = unix_now() + i64::try_from(within.as_secs()).unwrap_or(i64::MAX / 2);
        let rows = sqlx::query(
            "SELECT project_member_id, token_version FROM members \
             WHERE needs_reauth = 0 AND refresh_token IS NOT NULL AND token_expires_at < $1 \
             ORDER BY token_expires_at",
        )
        .bind(horizon)
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut report = SweepReport::default();
        for row in rows {
            let id: String = row.try_get("project_member_id")?;
            let version: i64 = row.try_get("token_version")?;
            report.due += 1;
            match self.refresh_from(&id, version).await {
                Ok(Outcome::Refreshed(_)) => report.refreshed += 1,
                Ok(Outcome::AlreadyFresh(_)) => report.already_fresh += 1,
                Err(TokenError::NeedsReauthorization) => report.needs_reauth += 1,
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Runs [`TokenManager::sweep`] every `every`, logging one summary per sweep.
    pub fn spawn_sweeper(&self, every: Duration, within: Duration) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match manager.sweep(within).await {
                    Ok(report) => tracing::info!(
                        due = report.due,
                        refreshed = report.refreshed,
                        already_fresh = report.already_fresh,
                        needs_reauth = report.needs_reauth,
                        failed = report.failed,
                        "token sweep"
                    ),
                    Err(err) => tracing::warn!(error = %err, "token sweep could not run"),
                }
            }
        })
    }

    /// How many refreshes this instance has performed.
    pub fn refresh_count(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    /// Refreshes the member unless their `token_version` has moved past `seen_version`, in
    /// which case the newer token is returned. Serialized per member inside the process.
    async fn refresh_from(
        &self,
        project_member_id: &str,
        seen_version: i64,
    ) -> Result<Outcome, TokenError> {
        let lock = self.inner.locks.entry(project_member_id.to_owned()).or_default().clone();
        let guard = lock.lock().await;
        let outcome = self.refresh_leased(project_member_id, seen_version).await;
        drop(guard);
        drop(lock);
        self.inner.locks.remove_if(project_member_id, |_, lock| Arc::strong_count(lock) == 1);
        outcome
    }

    /// The cross-instance part: take the lease or wait for whoever holds it.
    async fn refresh_leased(
        &self,
        project_member_id: &str,
        seen_version: i64,
    ) -> Result<Outcome, TokenError> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let row = self.load(project_member_id).await?;
            if row.needs_reauth {
                return Err(TokenError::NeedsReauthorization);
            }
            if row.version != seen_version {
                let access = usable(&row)?;
                return Ok(Outcome::AlreadyFresh(
                    self.inner.cipher.decrypt(project_member_id, access)?,
                ));
            }
            let now = unix_now();
            let held_by_other = row.lease_until >= now
                && row.lease_owner.as_deref() != Some(self.inner.instance.as_str());
            if !held_by_other && self.take_lease(project_member_id, seen_version, now).await? {
                return self.refresh_as_leaseholder(project_member_id, &row).await;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    member = project_member_id,
                    kind = "lease_wait",
                    "gave up waiting for another instance's token refresh"
                );
                return Err(TokenError::Upstream(OhError::Transport(
                    "another instance's token refresh did not finish in time".to_owned(),
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Compare-and-swap: the lease is ours if the version is unchanged and no other instance
    /// holds a live lease (a lease of our own is left over from a failed write: the per-member
    /// mutex rules out a concurrent refresh in this process).
    async fn take_lease(
        &self,
        project_member_id: &str,
        version: i64,
        now: i64,
    ) -> Result<bool, TokenError> {
        let done = sqlx::query(
            "UPDATE members SET refresh_lease_owner = $1, refresh_lease_until = $2 \
             WHERE project_member_id = $3 AND token_version = $4 \
             AND (refresh_lease_until < $5 OR refresh_lease_owner = $1)",
        )
        .bind(&self.inner.instance)
        .bind(now + LEASE_SECONDS)
        .bind(project_member_id)
        .bind(version)
        .bind(now)
        .execute(self.inner.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Calls the token endpoint and records the result; only the lease holder gets here.
    async fn refresh_as_leaseholder(
        &self,
        project_member_id: &str,
        row: &TokenRow,
    ) -> Result<Outcome, TokenError> {
        let Some(sealed) = row.refresh_token.as_deref() else {
            self.release_lease(project_member_id, row.version).await?;
            return Err(TokenError::NeedsReauthorization);
        };
        let refresh_token = match self.inner.cipher.decrypt(project_member_id, sealed) {
            Ok(token) => token,
            Err(err) => {
                self.release_lease(project_member_id, row.version).await?;
                return Err(err.into());
            }
        };
        match self.inner.client.refresh(&refresh_token).await {
            Ok(tokens) => {
                self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
                let expires_at =
                    self.save_refreshed(project_member_id, row.version, &tokens).await?;
                tracing::info!(member = project_member_id, expires_at, "refreshed the tokens");
                Ok(Outcome::Refreshed(tokens.access_token))
            }
            Err(err) if err.needs_reauthorization() => {
                tracing::warn!(
                    member = project_member_id,
                    kind = err.kind(),
                    "token refresh failed"
                );
                if !self.mark_needs_reauth_at(project_member_id, row.version).await? {
                    // Someone wrote newer tokens meanwhile: theirs are good.
                    let newer = self.load(project_member_id).await?;
                    if !newer.needs_reauth
                        && let Some(access) = newer.access_token.as_deref()
                    {
                        let token = self.inner.cipher.decrypt(project_member_id, access)?;
                        return Ok(Outcome::AlreadyFresh(token));
                    }
                }
                Err(TokenError::NeedsReauthorization)
            }
            Err(err) => {
                tracing::warn!(
                    member = project_member_id,
                    kind = err.kind(),
                    "token refresh failed"
                );
                self.release_lease(project_member_id, row.version).await?;
                Err(TokenError::Upstream(err))
            }
        }
    }

    /// Writes the new tokens, bumping the version and clearing the lease; returns the expiry.
    async fn save_refreshed(
        &self,
        project_member_id: &str,
        version: i64,
        tokens: &TokenSet,
    ) -> Result<i64, TokenError> {
        let now = unix_now();
        let (access, refresh, expires_at) = self.seal(project_member_id, tokens, now);
        let update = |owner: Option<&str>| {
            let mut sql = String::from(
                "UPDATE members SET access_token = $1, refresh_token = $2, token_expires_at = $3, \
                 token_version = token_version + 1, refresh_lease_owner = NULL, \
                 refresh_lease_until = 0, needs_reauth = 0, updated_at = $4 \
                 WHERE project_member_id = $5 AND token_version = $6",
            );
            if owner.is_some() {
                sql.push_str(" AND refresh_lease_owner = $7");
            }
            let access = access.clone();
            let refresh = refresh.clone();
            let owner = owner.map(str::to_owned);
            async move {
                let mut query = sqlx::query(&sql)
                    .bind(access)
                    .bind(refresh)
                    .bind(expires_at)
                    .bind(now)
                    .bind(project_member_id)
                    .bind(version);
                if let Some(owner) = owner {
                    query = query.bind(owner);
                }
                query.execute(self.inner.db.pool()).await
            }
        };
        if update(Some(&self.inner.instance)).await?.rows_affected() == 1 {
            return Ok(expires_at);
        }
        // The lease was taken over (it outlived its term). The tokens in hand are the only
        // valid ones, since this refresh spent the previous refresh token: keep them.
        tracing::warn!(
            member = project_member_id,
            kind = "lease_lost",
            "refresh lease expired before the new tokens were written"
        );
        if update(None).await?.rows_affected() == 0 {
            tracing::warn!(
                member = project_member_id,
                kind = "version_moved",
                "newer tokens were stored while this refresh ran"
            );
        }
        Ok(expires_at)
    }

    /// Marks the member as needing to authorize again (and frees any refresh lease), but only
    /// while the row still holds `version`: a refresh or a new authorization that landed in
    /// between wins. Returns whether the mark was made.
    async fn mark_needs_reauth_at(
        &self,
        project_member_id: &str,
        version: i64,
    ) -> Result<bool, TokenError> {
        let done = sqlx::query(
            "UPDATE members SET needs_reauth = 1, refresh_lease_owner = NULL, \
             refresh_lease_until = 0, updated_at = $1 \
             WHERE project_member_id = $2 AND token_version = $3",
        )
        .bind(unix_now())
        .bind(project_member_id)
        .bind(version)
        .execute(self.inner.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, project_member_id: &str, version: i64) -> Result<(), TokenError> {
        sqlx::query(
            "UPDATE members SET refresh_lease_owner = NULL, refresh_lease_until = 0 \
             WHERE project_member_id = $1 AND token_version = $2 AND refresh_lease_owner = $3",
        )
        .bind(project_member_id)
        .bind(version)
        .bind(&self.inner.instance)
        .execute(self.inner.db.pool())
        .await?;
        Ok(())
    }

    fn seal(
        &self,
        project_member_id: &str,
        tokens: &TokenSet,
        now: i64,
    ) -> (Vec<u8>, Vec<u8>, i64) {
        let access = self.inner.cipher.encrypt(project_member_id, &tokens.access_token);
        let refresh = self.inner.cipher.encrypt(project_member_id, &tokens.refresh_token);
        let lifetime = i64::try_from(tokens.expires_in).unwrap_or(i64::MAX / 2);
        (access, refresh, now.saturating_add(lifetime))
    }

    async fn load(&self, project_member_id: &str) -> Result<TokenRow, TokenError> {
        let row = sqlx::query(
            "SELECT access_token, refresh_token, token_expires_at, token_version, \
             refresh_lease_owner, refresh_lease_until, needs_reauth \
             FROM members WHERE project_member_id = $1",
        )
        .bind(project_member_id)
        .fetch_optional(self.inner.db.pool())
        .await?
        .ok_or(TokenError::UnknownMember)?;
        let needs_reauth: i64 = row.try_get("needs_reauth")?;
        Ok(TokenRow {
            access_token: row.try_get("access_token")?,
            refresh_token: row.try_get("refresh_token")?,
            expires_at: row.try_get("token_expires_at")?,
            version: row.try_get("token_version")?,
            lease_owner: row.try_get("refresh_lease_owner")?,
            lease_until: row.try_get("refresh_lease_until")?,
            needs_reauth: needs_reauth != 0,
        })
    }
}

/// The sealed access token of a member who can still use it.
fn usable(row: &TokenRow) -> Result<&[u8], TokenError> {
    if row.needs_reauth || row.refresh_token.is_none() {
        return Err(TokenError::NeedsReauthorization);
    }
    row.access_token.as_deref().ok_or(TokenError::NeedsReauthorization)
}

fn margin_seconds() -> i64 {
    i64::try_from(REFRESH_MARGIN.as_secs()).unwrap_or(60)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
