//! Loading the state from the database, and the deterministic seed written on first start:
//! three source projects, the project under test, five test users and their files.

use axum::body::Bytes;
use rand::distributions::Alphanumeric;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::model::{DataFile, DataType, OAuthApp, Project, State, User};
use crate::store::Store;
use crate::{SandboxConfig, SandboxError};

/// Id of the seeded project under test (`direct-sharing-1001`).
pub(crate) const PROJECT_ID: i64 = 1001;
/// Source project: a 23andMe genotype upload.
pub(crate) const SOURCE_23ANDME: i64 = 128;
/// Source project: a Fitbit connection.
pub(crate) const SOURCE_FITBIT: i64 = 102;
/// Source project: a diet survey.
pub(crate) const SOURCE_DIET: i64 = 131;

const SEED_LABEL: &str = "ohkit-sandbox/seed/v1/";

/// The loaded state plus the URL-signing key.
pub(crate) struct Opened {
    pub(crate) state: State,
    pub(crate) signing_key: [u8; 32],
}

/// A deterministic random generator for one purpose of the seed.
fn rng_for(label: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("{SEED_LABEL}{label}").as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest);
    ChaCha8Rng::from_seed(seed)
}

/// A deterministic `[A-Za-z0-9]` string.
pub(crate) fn derived_token(label: &str, len: usize) -> String {
    rng_for(label).sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// Loads the state, seeding an empty database first, then applies the configured overrides.
pub(crate) async fn load_or_seed(
    store: &Store,
    config: &SandboxConfig,
) -> Result<Opened, SandboxError> {
    let signing_key = match store.meta("signing_key").await? {
        Some(hex_key) => {
            let bytes = hex::decode(hex_key)
                .map_err(|e| SandboxError::Config(format!("stored signing key: {e}")))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| SandboxError::Config("stored signing key length".to_owned()))?
        }
        None => {
            let key: [u8; 32] = rand::random();
            store.set_meta("signing_key", &hex::encode(key)).await?;
            key
        }
    };

    let mut state = State::default();
    for p in store.load::<Project>().await? {
        state.projects.insert(p.id, p);
    }
    if state.projects.is_empty() {
        seed(store, &mut state);
    } else {
        for u in store.load::<User>().await? {
            state.users.insert(u.id, u);
        }
        for m in store.load().await? {
            let m: crate::model::Member = m;
            state.members.insert(m.pk, m);
        }
        for f in store.load::<DataFile>().await? {
            state.files.insert(f.id, f);
        }
        for d in store.load::<DataType>().await? {
            state.datatypes.insert(d.id, d);
        }
        for t in store.load::<crate::model::AccessToken>().await? {
            state.access.insert(t.digest.clone(), t);
        }
        for t in store.load::<crate::model::RefreshToken>().await? {
            state.refresh.insert(t.digest.clone(), t);
        }
        for g in store.load::<crate::model::Grant>().await? {
            state.grants.insert(g.digest.clone(), g);
        }
        for m in store.load::<crate::model::Message>().await? {
            state.messages.insert(m.id, m);
        }
        for w in store.load::<crate::model::WebhookDelivery>().await? {
            state.webhooks.insert(w.id, w);
        }
        for s in store.load::<crate::model::Session>().await? {
            state.sessions.insert(s.id.clone(), s);
        }
    }
    apply_overrides(store, &mut state, config);
    store.flush().await;
    Ok(Opened { state, signing_key })
}

fn apply_overrides(store: &Store, state: &mut State, config: &SandboxConfig) {
    let Some(project) = state.projects.get_mut(&PROJECT_ID) else {
        return;
    };
    let seed = &config.project;
    if let Some(name) = &seed.name {
        project.name.clone_from(name);
        project.slug = crate::pages::slugify(name);
    }
    if let Some(v) = &seed.redirect_url {
        project.redirect_url.clone_from(v);
    }
    if let Some(v) = &seed.deauth_webhook {
        project.deauth_webhook.clone_from(v);
    }
    if let Some(v) = &seed.webhook_secret {
        project.webhook_secret.clone_from(v);
    }
    if let Some(v) = &seed.enrollment_url {
        project.enrollment_url.clone_from(v);
    }
    if let Some(oauth) = &mut project.oauth {
        if let Some(v) = &seed.client_id {
            oauth.client_id.clone_from(v);
        }
        if let Some(v) = &seed.client_secret {
            oauth.client_secret.clone_from(v);
        }
    }
    if config.approved {
        project.approved = true;
    }
    let now = OffsetDateTime::now_utc();
    if project.master_token_expires <= now {
        project.master_access_token = crate::util::random_token(64);
        project.master_token_expires = now + time::Duration::hours(24);
    }
    store.put(project);
}

struct SourceSpec {
    id: i64,
    name: &'static str,
    leader: &'static str,
    organization: &'static str,
    short: &'static str,
    returned: &'static str,
}

const SOURCES: [SourceSpec; 3] = [
    SourceSpec {
        id: SOURCE_23ANDME,
        name: "23andMe Upload",
        leader: "Mad Ball",
        organization: "Open Humans Foundation",
        short: "Upload your raw genotype data from 23andMe.",
        returned: "23andMe genotype data",
    },
    SourceSpec {
        id: SOURCE_FITBIT,
        name: "Fitbit Connection",
        leader: "Mad Ball",
        organization: "Open Humans Foundation",
        short: "Connect your Fitbit account to import daily activity and sleep.",
        returned: "Fitbit activity and sleep summaries",
    },
    SourceSpec {
        id: SOURCE_DIET,
        name: "Diet Survey",
        leader: "Dr. Lena Fischer",
        organization: "Nutrition Lab, Example University",
        short: "A four-week food diary with daily mood ratings.",
        returned: "Diet diary responses (CSV)",
    },
];

fn base_project(id: i64, name: &str, created: OffsetDateTime) -> Project {
    Project {
        id,
        slug: crate::pages::slugify(name),
        name: name.to_owned(),
        is_study: false,
        leader: String::new(),
        organization: String::new(),
        is_academic_or_nonprofit: true,
        add_data: true,
        explore_share: true,
        contact_email: String::new(),
        info_url: String::new(),
        short_description: String::new(),
        long_description: String::new(),
        returned_data_description: String::new(),
        active: true,
        approved: true,
        badge_image: None,
        requested_sources: Vec::new(),
        all_sources_access: false,
        request_username_access: false,
        erasure_supported: false,
        deauth_email_notification: false,
        registered_datatypes: Vec::new(),
        enrollment_url: String::new(),
        terms_url: String::new(),
        redirect_url: String::new(),
        deauth_webhook: String::new(),
        webhook_secret: String::new(),
        oauth: None,
        master_access_token: derived_token(&format!("master/{id}"), 64),
        master_token_expires: OffsetDateTime::now_utc() + time::Duration::hours(24),
        created,
    }
}

fn seed(store: &Store, state: &mut State) {
    let epoch = datetime!(2024-03-01 09:00:00 UTC);
    let datatypes =
        [(1, "Genotype"), (2, "Activity tracking"), (3, "Sleep"), (4, "Diet"), (5, "Mood")];
    for (id, name) in datatypes {
        let dt = DataType { id, name: name.to_owned() };
        store.put(&dt);
        state.datatypes.insert(id, dt);
    }
    for (i, spec) in SOURCES.iter().enumerate() {
        let mut p = base_project(spec.id, spec.name, epoch + time::Duration::days(i as i64));
        p.leader = spec.leader.to_owned();
        p.organization = spec.organization.to_owned();
        p.short_description = spec.short.to_owned();
        p.long_description = spec.short.to_owned();
        p.returned_data_description = spec.returned.to_owned();
        p.contact_email = format!("{}@example.org", p.slug);
        p.info_url = format!("https://example.org/{}", p.slug);
        store.put(&p);
        state.projects.insert(p.id, p);
    }
    let mut p = base_project(PROJECT_ID, "Daily Rhythms Study", epoch + time::Duration::days(7));
    p.is_study = true;
    p.approved = false;
    p.leader = "Dr. Ada Okafor".to_owned();
    p.organization = "Chronobiology Group, Example University".to_owned();
    p.contact_email = "rhythms@example.org".to_owned();
    p.info_url = "https://example.org/rhythms".to_owned();
    p.short_description =
        "Combines your activity and diet records to chart weekly rhythms of sleep and mood."
            .to_owned();
    p.long_description = "Members share Fitbit activity summaries and diet diary answers. \
        The project computes weekly sleep and mood summaries and returns them to each \
        member's Open Humans account."
        .to_owned();
    p.returned_data_description = "Weekly sleep and mood summaries (JSON).".to_owned();
    p.requested_sources = vec![SOURCE_FITBIT, SOURCE_DIET];
    p.request_username_access = true;
    p.erasure_supported = true;
    p.registered_datatypes = vec![3, 5];
    p.enrollment_url = "http://127.0.0.1:3000/".to_owned();
    p.terms_url = "http://127.0.0.1:3000/terms".to_owned();
    p.redirect_url = "http://127.0.0.1:3000/openhumans/complete/".to_owned();
    p.webhook_secret = derived_token("webhook_secret", 32);
    p.oauth = Some(OAuthApp {
        client_id: derived_token("client_id", 40),
        client_secret: derived_token("client_secret", 128),
    });
    store.put(&p);
    state.projects.insert(p.id, p);

    let users = [
        ("alice", "Alice Nakamura"),
        ("bob", "Bob Lindqvist"),
        ("carmen", "Carmen Ortiz"),
        ("dmitri", "Dmitri Volkov"),
        ("esi", "Esi Mensah"),
    ];
    let mut file_id = 5001;
    for (i, (username, name)) in users.iter().enumerate() {
        let user_id = i as i64 + 1;
        let user = User {
            id: user_id,
            username: (*username).to_owned(),
            name: (*name).to_owned(),
            email: format!("{username}@example.org"),
            created: epoch + time::Duration::hours(i as i64),
        };
        let mut add = |source: i64,
                       filename: String,
                       content: String,
                       meta: serde_json::Value,
                       dts: Vec<i64>| {
            let created = epoch + time::Duration::days(10 + file_id - 5001);
            let file = DataFile {
                id: file_id,
                user_id,
                source_project_id: source,
                key: format!(
                    "member-files/direct-sharing-{source}/{}/{filename}",
                    derived_uuid(&format!("file/{file_id}"))
                ),
                metadata: meta,
                datatypes: dts,
                created,
                completed: true,
                present: true,
                size: content.len() as u64,
            };
            store.put_blob(crate::files::blob_key(file.id), Bytes::from(content));
            store.put(&file);
            state.files.insert(file.id, file);
            file_id += 1;
        };
        if matches!(*username, "alice" | "carmen" | "esi") {
            add(
                SOURCE_23ANDME,
                format!("genome_{}_v5_Full.txt", name.replace(' ', "_")),
                genotype_file(username),
                serde_json::json!({"description": "23andMe raw genotype data", "tags": ["23andMe", "genotype", "txt"]}),
                vec![1],
            );
        }
        if matches!(*username, "alice" | "bob" | "dmitri" | "esi") {
            add(
                SOURCE_FITBIT,
                "fitbit-activity-2024-02.json".to_owned(),
                fitbit_file(username),
                serde_json::json!({"description": "Fitbit daily steps and sleep, February 2024", "tags": ["fitbit", "activity", "sleep", "json"]}),
                vec![2, 3],
            );
        }
        if matches!(*username, "alice" | "bob" | "carmen" | "dmitri") {
            add(
                SOURCE_DIET,
                "diet-diary.csv".to_owned(),
                survey_file(username),
                serde_json::json!({"description": "Four-week diet diary with mood ratings", "tags": ["survey", "diet", "csv"]}),
                vec![4, 5],
            );
        }
        store.put(&user);
        state.users.insert(user.id, user);
    }
}

/// A deterministic UUID-shaped string.
fn derived_uuid(label: &str) -> String {
    let mut bytes = [0u8; 16];
    rng_for(label).fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

fn genotype_file(username: &str) -> String {
    let mut rng = rng_for(&format!("genotype/{username}"));
    let mut out = String::from(
        "# This data file generated by 23andMe at: Thu Feb 01 12:00:00 2024\n\
         #\n\
         # This file contains raw genotype data, including data that is not used in 23andMe\n\
         # reports. Sandbox data: generated, not a real person's genome.\n\
         #\n\
         # We are using reference human assembly build 37 (also known as Annotation Release 104).\n\
         # rsid\tchromosome\tposition\tgenotype\n",
    );
    let chromosomes: Vec<String> = (1..=22)
        .map(|c| c.to_string())
        .chain(["X", "Y", "MT"].into_iter().map(str::to_owned))
        .collect();
    let bases = ['A', 'C', 'G', 'T'];
    for chromosome in &chromosomes {
        let mut position: u64 = rng.gen_range(10_000..900_000);
        for _ in 0..12 {
            position += rng.gen_range(1_000..400_000);
            let rsid: u32 = rng.gen_range(1_000..99_999_999);
            let a = bases[rng.gen_range(0..4)];
            let b = if rng.gen_bool(0.7) { a } else { bases[rng.gen_range(0..4)] };
            let genotype = if matches!(chromosome.as_str(), "Y" | "MT") {
                a.to_string()
            } else if rng.gen_bool(0.01) {
                "--".to_owned()
            } else {
                format!("{a}{b}")
            };
            out.push_str(&format!("rs{rsid}\t{chromosome}\t{position}\t{genotype}\n"));
        }
    }
    out
}

fn fitbit_file(username: &str) -> String {
    let mut rng = rng_for(&format!("fitbit/{username}"));
    let days: Vec<serde_json::Value> = (1..=29)
        .map(|day| {
            serde_json::json!({
                "dateTime": format!("2024-02-{day:02}"),
                "steps": rng.gen_range(2_000..16_000),
                "minutesAsleep": rng.gen_range(300..520),
                "restingHeartRate": rng.gen_range(52..74),
            })
        })
        .collect();
    let doc = serde_json::json!({ "user": username, "source": "fitbit", "days": days });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

fn survey_file(username: &str) -> String {
    let mut rng = rng_for(&format!("survey/{username}"));
    let mut out = String::from(
        "date,vegetable_servings,fruit_servings,caffeine_mg,alcohol_units,mood_1_to_5\n",
    );
    for day in 1..=28 {
        out.push_str(&format!(
            "2024-02-{day:02},{},{},{},{},{}\n",
            rng.gen_range(0..7),
            rng.gen_range(0..5),
            rng.gen_range(0..400),
            rng.gen_range(0..3),
            rng.gen_range(1..=5),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_credentials_are_stable() {
        assert_eq!(derived_token("client_id", 40), derived_token("client_id", 40));
        assert_eq!(derived_token("client_id", 40).len(), 40);
        assert_ne!(derived_token("client_id", 40), derived_token("client_secret", 40));
    }

    #[test]
    fn genotype_has_a_few_hundred_lines() {
        let text = genotype_file("alice");
        let lines = text.lines().filter(|l| l.starts_with("rs")).count();
        assert_eq!(lines, 25 * 12);
        assert_eq!(text, genotype_file("alice"));
    }
}
