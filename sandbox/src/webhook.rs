//! Leaving a project and the deauthorization webhook (§5): the exact body bytes, the
//! HMAC-SHA1 signature, the one legacy double-encoded retry, and the delivery log.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use time::OffsetDateTime;

use crate::Sandbox;
use crate::model::{AccessToken, DataFile, RefreshToken, State as Db, WebhookDelivery};
use crate::util::{py_json_str, python_isoformat};

/// The webhook body exactly as the platform's `json.dumps` writes it.
pub fn payload(
    project_member_id: &str,
    erasure_requested: bool,
    timestamp: OffsetDateTime,
) -> String {
    payload_with_timestamp(project_member_id, erasure_requested, &python_isoformat(timestamp))
}

fn payload_with_timestamp(
    project_member_id: &str,
    erasure_requested: bool,
    timestamp: &str,
) -> String {
    format!(
        "{{\"project_member_id\": {}, \"erasure_requested\": {}, \"timestamp\": {}}}",
        py_json_str(project_member_id),
        if erasure_requested { "true" } else { "false" },
        py_json_str(timestamp)
    )
}

/// `sha1=<hex>` over the raw body bytes.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

fn valid_webhook_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

struct Pending {
    url: String,
    secret: String,
    body: String,
    project_member_id: String,
}

/// `leave_project`: revoke the member, delete its tokens, optionally its files returned by the
/// project, then send the webhook (never while holding the state lock).
pub(crate) async fn leave_project(sb: &Sandbox, member_pk: i64, erasure: bool, remove_files: bool) {
    let now = sb.now();
    let pending = {
        let mut db = sb.inner.state.lock();
        let Some(member) = db.members.get_mut(&member_pk) else {
            return;
        };
        member.revoked = true;
        member.joined = false;
        member.authorized = false;
        member.erasure_requested = erasure.then_some(now);
        let member = member.clone();
        sb.inner.store.put(&member);
        revoke_tokens(sb, &mut db, member.user_id, member.project_id);
        if remove_files {
            let ids: Vec<i64> = db
                .files
                .values()
                .filter(|f| f.user_id == member.user_id && f.source_project_id == member.project_id)
                .map(|f| f.id)
                .collect();
            for id in ids {
                db.files.remove(&id);
                sb.inner.store.delete::<DataFile>(id.to_string());
                sb.inner.store.delete_blob(crate::files::blob_key(id));
            }
        }
        db.projects
            .get(&member.project_id)
            .filter(|p| p.oauth.is_some() && valid_webhook_url(&p.deauth_webhook))
            .map(|p| Pending {
                url: p.deauth_webhook.clone(),
                secret: p.webhook_secret.clone(),
                body: payload(&member.project_member_id, erasure, now),
                project_member_id: member.project_member_id.clone(),
            })
    };
    if let Some(pending) = pending {
        deliver(sb, pending).await;
    }
}

/// Deletes every access and refresh token of (user, project).
pub(crate) fn revoke_tokens(sb: &Sandbox, db: &mut Db, user_id: i64, project_id: i64) {
    let access: Vec<String> = db
        .access
        .values()
        .filter(|t| t.user_id == user_id && t.project_id == project_id)
        .map(|t| t.digest.clone())
        .collect();
    for key in access {
        db.access.remove(&key);
        sb.inner.store.delete::<AccessToken>(key);
    }
    let refresh: Vec<String> = db
        .refresh
        .values()
        .filter(|t| t.user_id == user_id && t.project_id == project_id)
        .map(|t| t.digest.clone())
        .collect();
    for key in refresh {
        db.refresh.remove(&key);
        sb.inner.store.delete::<RefreshToken>(key);
    }
}

async fn post(
    sb: &Sandbox,
    url: &str,
    body: String,
    signature: Option<String>,
) -> Result<u16, String> {
    let mut request = sb.inner.http.post(url).header("Content-Type", "application/json").body(body);
    if let Some(signature) = signature {
        request = request.header("X-OpenHumans-Webhooks-Signature", signature);
    }
    match request.send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(error) => Err(if error.is_timeout() {
            "timed out".to_owned()
        } else if error.is_connect() {
            "connection failed".to_owned()
        } else {
            "request failed".to_owned()
        }),
    }
}

fn log(sb: &Sandbox, url: &str, pmid: &str, kind: &str, body: &str, outcome: &Result<u16, String>) {
    let outcome = match outcome {
        Ok(status) => format!("HTTP {status}"),
        Err(error) => format!("error: {error}"),
    };
    tracing::info!(url, kind, %outcome, "deauthorization webhook delivered");
    let mut db = sb.inner.state.lock();
    let entry = WebhookDelivery {
        id: Db::next_id(&db.webhooks, 1),
        time: sb.now(),
        url: url.to_owned(),
        project_member_id: pmid.to_owned(),
        kind: kind.to_owned(),
        body: body.to_owned(),
        outcome,
    };
    sb.inner.store.put(&entry);
    db.webhooks.insert(entry.id, entry);
}

async fn deliver(sb: &Sandbox, pending: Pending) {
    let signature =
        (!pending.secret.is_empty()).then(|| signature(&pending.secret, pending.body.as_bytes()));
    let kind = if signature.is_some() { "signed" } else { "unsigned" };
    let outcome = post(sb, &pending.url, pending.body.clone(), signature).await;
    log(sb, &pending.url, &pending.project_member_id, kind, &pending.body, &outcome);
    let failed_status = matches!(outcome, Ok(status) if !(200..300).contains(&status));
    if failed_status && sb.inner.switches.read().legacy_webhook_retry {
        let legacy = py_json_str(&pending.body);
        let outcome = post(sb, &pending.url, legacy.clone(), None).await;
        log(sb, &pending.url, &pending.project_member_id, "legacy", &legacy, &outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_signature() {
        let body = payload_with_timestamp("12345678", true, "2020-06-30T20:00:00.000000+00:00");
        assert_eq!(
            body,
            r#"{"project_member_id": "12345678", "erasure_requested": true, "timestamp": "2020-06-30T20:00:00.000000+00:00"}"#
        );
        assert_eq!(
            signature("abcdefghijklmnop", body.as_bytes()),
            "sha1=ebda5c0a38593a4350ad8401b7d8c8f1cd08ec67"
        );
    }
}
