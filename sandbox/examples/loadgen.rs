//! A bounded loopback load generator: serves the sandbox (in memory) plus a bare axum route
//! from one process, enrolls test members through the real consent flow, then measures
//! requests per second and p99 latency for the bare route, exchange-member and token
//! refresh (each worker follows its own rotating refresh-token chain).

use std::time::{Duration, Instant};

use clap::Parser;
use sandbox::{Sandbox, SandboxConfig};

/// Load generator options.
#[derive(Debug, Parser)]
struct Opts {
    /// Seconds per measured phase (at most 60).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent workers per phase (at most 64).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

struct Stats {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p99: Duration,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

fn stats(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Stats {
    latencies.sort();
    let p99 = latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    Stats { requests: latencies.len(), errors, elapsed, p99 }
}

async fn enroll(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    secret: &str,
    name: &str,
) -> (String, String) {
    let signup = http
        .post(format!("{base}/account/signup/"))
        .form(&[("new_username", name)])
        .send()
        .await
        .expect("signup answers");
    let cookie = signup
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let authorize = format!(
        "{base}/direct-sharing/projects/oauth2/authorize/?client_id={client_id}&response_type=code"
    );
    let allow = http
        .post(&authorize)
        .header("cookie", &cookie)
        .form(&[
            ("client_id", client_id),
            ("response_type", "code"),
            ("allow", "Authorize project"),
        ])
        .send()
        .await
        .expect("consent answers");
    let location = allow
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("redirect with code")
        .to_owned();
    let code = url::Url::parse(&location)
        .expect("absolute redirect")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens: serde_json::Value = http
        .post(format!("{base}/oauth2/token/"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token answers")
        .json()
        .await
        .expect("token JSON");
    (
        tokens["access_token"].as_str().expect("access").to_owned(),
        tokens["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

#[derive(Clone, Copy)]
enum Phase {
    Bare,
    Exchange,
    Refresh,
}

async fn run_phase(
    phase: Phase,
    http: reqwest::Client,
    base: String,
    creds: (String, String),
    tokens: Vec<(String, String)>,
    seconds: u64,
) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for (access, refresh) in tokens {
        let http = http.clone();
        let base = base.clone();
        let (client_id, secret) = creds.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut refresh = refresh;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = match phase {
                    Phase::Bare => http.get(format!("{base}/bench/bare/")).send().await.is_ok_and(|r| r.status().is_success()),
                    Phase::Exchange => match http
                        .get(format!("{base}/api/direct-sharing/project/exchange-member/?access_token={access}"))
                        .send()
                        .await
                    {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    },
                    Phase::Refresh => match http
                        .post(format!("{base}/oauth2/token/"))
                        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", &client_id), ("client_secret", &secret)])
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                            Ok(v) => match v["refresh_token"].as_str() {
                                Some(next) => {
                                    refresh = next.to_owned();
                                    true
                                }
                                None => false,
                            },
                            Err(_) => false,
                        },
                        _ => false,
                    },
                };
                if ok {
                    latencies.push(t0.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for handle in handles {
        if let Ok((latencies, e)) = handle.await {
            all.extend(latencies);
            errors += e;
        }
    }
    stats(all, errors, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = Opts::parse();
    let seconds = opts.seconds.clamp(1, 60);
    let concurrency = opts.concurrency.clamp(1, 64);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let base = format!("http://{addr}");
    let config = SandboxConfig {
        base_url: url::Url::parse(&base).expect("base URL"),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::open(config).await.expect("sandbox opens");
    let app = sandbox.router().route("/bench/bare/", axum::routing::get(|| async { "ok" }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let creds = sandbox.project_credentials();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("HTTP client");
    let mut tokens = Vec::new();
    for i in 0..concurrency {
        tokens.push(
            enroll(&http, &base, &creds.client_id, &creds.client_secret, &format!("load{i:02}"))
                .await,
        );
    }
    let pair = (creds.client_id.clone(), creds.client_secret.clone());
    let bare =
        run_phase(Phase::Bare, http.clone(), base.clone(), pair.clone(), tokens.clone(), seconds)
            .await;
    let exchange = run_phase(
        Phase::Exchange,
        http.clone(),
        base.clone(),
        pair.clone(),
        tokens.clone(),
        seconds,
    )
    .await;
    let refresh =
        run_phase(Phase::Refresh, http.clone(), base.clone(), pair, tokens, seconds).await;
    server.abort();
    let line = |name: &str, s: &Stats| {
        format!(
            "{name:<22} {:>10.0} {:>10.2} {:>9} {:>7} {:>10.2}",
            s.rate(),
            s.p99.as_secs_f64() * 1000.0,
            s.requests,
            s.errors,
            s.rate() / bare.rate()
        )
    };
    let report = [
        format!("loopback, {concurrency} workers, {seconds} s per phase"),
        format!(
            "{:<22} {:>10} {:>10} {:>9} {:>7} {:>10}",
            "route", "req/s", "p99 ms", "requests", "errors", "vs bare"
        ),
        line("bare axum route", &bare),
        line("exchange-member", &exchange),
        line("token refresh", &refresh),
    ];
    #[allow(clippy::print_stdout)]
    for l in report {
        println!("{l}");
    }
}
