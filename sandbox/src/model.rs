//! The platform's records as the sandbox keeps them in memory (and persists them, one JSON
//! document per record, through [`crate::store`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A record kind that the store can persist.
pub(crate) trait Entity: Serialize {
    /// The table-like kind name used as part of the storage key.
    const KIND: &'static str;
    /// The record's key within its kind.
    fn key(&self) -> String;
}

/// A test user (an Open Humans member account).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) username: String,
    pub(crate) name: String,
    pub(crate) email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created: OffsetDateTime,
}

/// OAuth2 client registration of a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OAuthApp {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

/// A project (`DataRequestProject`, with the OAuth2 fields when it has an application).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Project {
    pub(crate) id: i64,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) is_study: bool,
    pub(crate) leader: String,
    pub(crate) organization: String,
    pub(crate) is_academic_or_nonprofit: bool,
    pub(crate) add_data: bool,
    pub(crate) explore_share: bool,
    pub(crate) contact_email: String,
    pub(crate) info_url: String,
    pub(crate) short_description: String,
    pub(crate) long_description: String,
    pub(crate) returned_data_description: String,
    pub(crate) active: bool,
    pub(crate) approved: bool,
    pub(crate) badge_image: Option<String>,
    pub(crate) requested_sources: Vec<i64>,
    pub(crate) all_sources_access: bool,
    pub(crate) request_username_access: bool,
    pub(crate) erasure_supported: bool,
    pub(crate) deauth_email_notification: bool,
    pub(crate) registered_datatypes: Vec<i64>,
    pub(crate) enrollment_url: String,
    pub(crate) terms_url: String,
    pub(crate) redirect_url: String,
    pub(crate) deauth_webhook: String,
    pub(crate) webhook_secret: String,
    pub(crate) oauth: Option<OAuthApp>,
    pub(crate) master_access_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) master_token_expires: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created: OffsetDateTime,
}

impl Project {
    /// `direct-sharing-<id>`, the label of files this project returns.
    pub(crate) fn id_label(&self) -> String {
        format!("direct-sharing-{}", self.id)
    }
}

/// A member's relationship with a project (`DataRequestProjectMember`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Member {
    pub(crate) pk: i64,
    pub(crate) user_id: i64,
    pub(crate) project_id: i64,
    pub(crate) project_member_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created: OffsetDateTime,
    pub(crate) joined: bool,
    pub(crate) authorized: bool,
    pub(crate) revoked: bool,
    pub(crate) username_shared: bool,
    pub(crate) all_sources_shared: bool,
    pub(crate) visible: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) erasure_requested: Option<OffsetDateTime>,
    pub(crate) granted_sources: Vec<i64>,
    /// Every authorization, newest last.
    pub(crate) authorizations: Vec<String>,
}

impl Member {
    /// `joined and authorized and not revoked`.
    pub(crate) fn is_active(&self) -> bool {
        self.joined && self.authorized && !self.revoked
    }
}

/// A stored data file (`ProjectDataFile`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DataFile {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) source_project_id: i64,
    /// `member-files/direct-sharing-<pid>/<uuid1>/<filename>`.
    pub(crate) key: String,
    pub(crate) metadata: serde_json::Value,
    pub(crate) datatypes: Vec<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created: OffsetDateTime,
    pub(crate) completed: bool,
    /// Whether the blob store holds the bytes.
    pub(crate) present: bool,
    pub(crate) size: u64,
}

impl DataFile {
    /// `os.path.basename(file.name)`.
    pub(crate) fn basename(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

/// A registered data type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DataType {
    pub(crate) id: i64,
    pub(crate) name: String,
}

/// An OAuth2 access token, stored by the digest of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessToken {
    pub(crate) digest: String,
    pub(crate) user_id: i64,
    pub(crate) project_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) expires: OffsetDateTime,
    pub(crate) scope: String,
    pub(crate) refresh_digest: String,
}

/// An OAuth2 refresh token, stored by the digest of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefreshToken {
    pub(crate) digest: String,
    pub(crate) user_id: i64,
    pub(crate) project_id: i64,
    pub(crate) access_digest: String,
    pub(crate) scope: String,
}

/// An authorization code (`Grant`), stored by the digest of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) digest: String,
    pub(crate) user_id: i64,
    pub(crate) project_id: i64,
    pub(crate) redirect_uri: String,
    pub(crate) scope: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) expires: OffsetDateTime,
    pub(crate) code_challenge: Option<String>,
    pub(crate) code_challenge_method: Option<String>,
}

/// A project message as delivered to a member's inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) project_id: i64,
    pub(crate) from: String,
    pub(crate) reply_to: String,
    pub(crate) subject: String,
    pub(crate) body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) sent: OffsetDateTime,
}

/// One delivery attempt of a deauthorization webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WebhookDelivery {
    pub(crate) id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) time: OffsetDateTime,
    pub(crate) url: String,
    pub(crate) project_member_id: String,
    /// `signed`, `unsigned` or `legacy`.
    pub(crate) kind: String,
    pub(crate) body: String,
    pub(crate) outcome: String,
}

/// A browser session of the platform pages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) user_id: Option<i64>,
    pub(crate) next_url: Option<String>,
    pub(crate) flash: Vec<String>,
}

macro_rules! entity {
    ($ty:ty, $kind:literal, |$s:ident| $key:expr) => {
        impl Entity for $ty {
            const KIND: &'static str = $kind;
            fn key(&self) -> String {
                let $s = self;
                $key
            }
        }
    };
}

entity!(User, "user", |s| s.id.to_string());
entity!(Project, "project", |s| s.id.to_string());
entity!(Member, "member", |s| s.pk.to_string());
entity!(DataFile, "file", |s| s.id.to_string());
entity!(DataType, "datatype", |s| s.id.to_string());
entity!(AccessToken, "access", |s| s.digest.clone());
entity!(RefreshToken, "refresh", |s| s.digest.clone());
entity!(Grant, "grant", |s| s.digest.clone());
entity!(Message, "message", |s| s.id.to_string());
entity!(WebhookDelivery, "webhook", |s| s.id.to_string());
entity!(Session, "session", |s| s.id.clone());

/// Everything the sandbox knows, guarded by one mutex in [`crate::Shared`].
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) users: BTreeMap<i64, User>,
    pub(crate) projects: BTreeMap<i64, Project>,
    pub(crate) members: BTreeMap<i64, Member>,
    pub(crate) files: BTreeMap<i64, DataFile>,
    pub(crate) datatypes: BTreeMap<i64, DataType>,
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshToken>,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) messages: BTreeMap<i64, Message>,
    pub(crate) webhooks: BTreeMap<i64, WebhookDelivery>,
    pub(crate) sessions: HashMap<String, Session>,
}

impl State {
    /// The next free id of an integer-keyed map.
    pub(crate) fn next_id<V>(map: &BTreeMap<i64, V>, floor: i64) -> i64 {
        map.keys().next_back().map_or(floor, |k| (*k + 1).max(floor))
    }

    /// The project that owns an OAuth2 client id.
    pub(crate) fn project_by_client(&self, client_id: &str) -> Option<&Project> {
        self.projects.values().find(|p| {
            p.oauth.as_ref().is_some_and(|o| crate::util::secret_eq(&o.client_id, client_id))
        })
    }

    /// The member row of (user, project).
    pub(crate) fn member_of(&self, user_id: i64, project_id: i64) -> Option<&Member> {
        self.members.values().find(|m| m.user_id == user_id && m.project_id == project_id)
    }

    /// A member row by its project-scoped id.
    pub(crate) fn member_by_pmid(&self, project_id: i64, pmid: &str) -> Option<&Member> {
        self.members.values().find(|m| m.project_id == project_id && m.project_member_id == pmid)
    }

    /// The files a project may see for a member (§4.1), ordered by source then id.
    pub(crate) fn visible_files(&self, member: &Member) -> Vec<&DataFile> {
        let mut files: Vec<&DataFile> = self
            .files
            .values()
            .filter(|f| f.user_id == member.user_id && f.completed)
            .filter(|f| {
                member.all_sources_shared
                    || f.source_project_id == member.project_id
                    || member.granted_sources.contains(&f.source_project_id)
            })
            .collect();
        files.sort_by(|a, b| {
            format!("direct-sharing-{}", a.source_project_id)
                .cmp(&format!("direct-sharing-{}", b.source_project_id))
                .then(a.id.cmp(&b.id))
        });
        files
    }

    /// Number of active members of a project.
    pub(crate) fn authorized_members(&self, project_id: i64) -> usize {
        self.members.values().filter(|m| m.project_id == project_id && m.is_active()).count()
    }
}
