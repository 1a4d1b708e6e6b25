//! Delivery: makes one attempt at delivering an occurrence over its event's channel and
//! classifies the result ([`Delivered`]) for the retry policy. It writes nothing to the store:
//! the engine records the outcome.
//!
//! - `webhook`: a POST signed with Standard Webhooks' `webhook-signature` (and, with
//!   `delivery.legacy_signature`, `X-Qhronos-Signature`; see [`signing`]); during a secret
//!   rotation's grace period it carries both secrets' signatures.
//! - `apicall`: the event's method, headers and body, unsigned.
//! - `websocket`: [`ws::Hub`] sends a frame to one connection of the client and waits for its
//!   ack; `email`: [`email::Mailer`] over SMTP.
//! - `pull` is not pushed: clients claim it through its queue. One claimed here anyway (its
//!   event became `pull` meanwhile) fails with a zero retry delay, which puts it back in the
//!   queue at once.
//!
//! Every HTTP request carries `webhook-id: <occurrence id>`, the same on every attempt, as the
//! receiver's idempotency key (delivery is at least once). 2xx is success; 410 Gone is
//! permanent (a recurring event is paused); a 429 or 503 passes its `Retry-After` on;
//! anything else, a timeout or a connection error is a failure to retry. The client follows
//! no redirects (a 3xx is a failure: a receiver that moved must be updated, not silently
//! followed), uses no system proxy (it would bypass the SSRF guard), resolves names through
//! the [`ssrf`] guard on every connection, pools connections per host, and reads at most
//! `delivery.response_excerpt_bytes` of an answer.

#![warn(missing_docs)]

pub mod email;
pub mod signing;
pub mod ssrf;
pub mod ws;
pub mod ws_relay;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;

use crate::config::DeliveryConfig;
use crate::domain::action::Action;
use crate::domain::event::Event;
use crate::domain::occurrence::{Attempt, Occurrence};
use crate::domain::template::{render_body_off_thread, Vars};
use crate::domain::{fmt_ms, now_ms};
use crate::store::templates::{fill, Fill};
use crate::store::TemplateStore;

/// The result of one attempt, with what the retry policy needs to know.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The attempt as it is recorded: start (ms since the epoch), duration (ms), status code
    /// (HTTP, or SMTP reply code), error and a capped excerpt of the answer.
    pub attempt: Attempt,
    /// The receiver accepted it (a 2xx, an SMTP success, a WebSocket ack): the occurrence is
    /// completed.
    pub success: bool,
    /// No retry can help: the receiver said 410 Gone, or the guard refuses the target.
    pub permanent: bool,
    /// The receiver answered 410 Gone: a recurring event is paused.
    pub gone: bool,
    /// When to try again instead of the backoff schedule: a 429's or 503's `Retry-After`, the
    /// email cap's wait, or zero for an occurrence handed back to its pull queue. The retry
    /// policy caps it by `retry.max_delay`.
    pub retry_after: Option<Duration>,
}

impl Delivered {
    /// An attempt that failed before or without an answer, with why (`error`); its duration
    /// runs from `started_at` (ms since the epoch) to now. `permanent`: no retry can help.
    pub fn failed(attempt: u32, started_at: i64, error: String, permanent: bool) -> Delivered {
        Delivered {
            attempt: Attempt {
                attempt,
                started_at,
                duration_ms: (now_ms() - started_at).max(0),
                status_code: None,
                error: Some(error),
                response: None,
            },
            success: false,
            permanent,
            gone: false,
            retry_after: None,
        }
    }
}

/// The webhook body of DESIGN §4, fields in this order.
#[derive(Serialize)]
struct WebhookBody<'a> {
    event_id: String,
    occurrence_id: String,
    name: &'a str,
    description: Option<&'a str>,
    scheduled_at: String,
    /// Only for an event with a duration, so that other bodies stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    dispatched_at: String,
    attempt: u32,
    metadata: &'a serde_json::Value,
    tags: &'a [String],
}

/// Delivers occurrences over every channel; one per process, shared by all delivery tasks.
/// Holds the pooled HTTP client.
pub struct Deliverer {
    client: reqwest::Client,
    excerpt_bytes: usize,
    default_secret: String,
    /// `delivery.legacy_signature`: also send `X-Qhronos-Signature`.
    legacy_signature: bool,
    guard: Arc<ssrf::Guard>,
    hub: Arc<ws::Hub>,
    mailer: Option<email::Mailer>,
    /// Where the named templates of actions are read at each attempt (`None`: an action that
    /// names one fails).
    templates: Option<Arc<dyn TemplateStore>>,
}

impl Deliverer {
    /// Builds the HTTP client (guarded resolver, no redirects, no proxy, connect timeout 5 s,
    /// `delivery.user_agent`). `default_secret` signs the webhooks of events that have no
    /// secret of their own; `mailer` is `None` when no SMTP server is configured (email
    /// attempts then fail permanently). `Err` when the HTTP client cannot be built (its TLS
    /// backend).
    pub fn new(
        cfg: &DeliveryConfig,
        default_secret: String,
        guard: Arc<ssrf::Guard>,
        hub: Arc<ws::Hub>,
        mailer: Option<email::Mailer>,
    ) -> anyhow::Result<Deliverer> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(ssrf::GuardedResolver(guard.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(cfg.user_agent.clone())
            .pool_max_idle_per_host(cfg.per_target_concurrency)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Deliverer {
            client,
            excerpt_bytes: cfg.response_excerpt_bytes,
            default_secret,
            legacy_signature: cfg.legacy_signature,
            guard,
            hub,
            mailer,
            templates: None,
        })
    }

    /// Reads the named templates of actions from `store`: each attempt of such an action
    /// renders the version the event is pinned to (or the newest, for `"latest"`).
    pub fn with_templates(mut self, store: Arc<dyn TemplateStore>) -> Deliverer {
        self.templates = Some(store);
        self
    }

    /// The event with its action's named template filled in (`Ok(None)`: it names none). A
    /// template or version that is gone fails the attempt permanently; a store that cannot be
    /// read, for now.
    async fn fill_template(
        &self,
        event: &Event,
        attempt: u32,
        started_at: crate::domain::Millis,
    ) -> Result<Option<Event>, Delivered> {
        if event.action.template_ref().is_none() {
            return Ok(None);
        }
        let Some(store) = &self.templates else {
            return Err(Delivered::failed(
                attempt,
                started_at,
                "action.params.template: this node reads no named templates".into(),
                true,
            ));
        };
        match fill(store.as_ref(), &event.action).await {
            Ok(Some((action, _))) => {
                let mut e = event.clone();
                e.action = action;
                Ok(Some(e))
            }
            Ok(None) => Ok(None),
            Err(Fill::Missing(m)) => Err(Delivered::failed(attempt, started_at, m, true)),
            Err(Fill::Store(e)) => Err(Delivered::failed(
                attempt,
                started_at,
                format!("action.params.template: cannot be read now: {e}"),
                false,
            )),
        }
    }

    /// The target an action's deliveries are capped by (`host:port` of its URL): at most
    /// `delivery.per_target_concurrency` attempts at once per target on this node, so one slow
    /// receiver cannot take every delivery slot. `None` for an action without a URL (WebSocket,
    /// email, pull) or an unparsable one: no per-target cap applies.
    pub fn target_of(action: &Action) -> Option<String> {
        let u = reqwest::Url::parse(action.url()?).ok()?;
        Some(format!(
            "{}:{}",
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ))
    }

    /// Makes attempt number `attempt` (1-based) at delivering `occ`, over the event's channel.
    /// The first attempt also copies the occurrence to the WebSocket tag listeners. Never
    /// fails: every problem (a refused target, a template that does not render, a timeout)
    /// is a [`Delivered`] with its error. `timeout` bounds an HTTP attempt (connect, request,
    /// answer); a WebSocket ack waits `websocket.ack_timeout`, SMTP `smtp.timeout`.
    pub async fn deliver(
        &self,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        timeout: Duration,
    ) -> Delivered {
        let started_at = now_ms();
        if attempt == 1 {
            self.hub.broadcast(event, occ);
        }
        let filled = match self.fill_template(event, attempt, started_at).await {
            Ok(f) => f,
            Err(d) => return d,
        };
        let event = filled.as_ref().unwrap_or(event);
        match &event.action {
            Action::Webhook { .. } | Action::Apicall { .. } => {
                self.deliver_http(event, occ, attempt, timeout, started_at)
                    .await
            }
            Action::Websocket { client_name } => {
                self.hub
                    .deliver(client_name, event, occ, attempt, started_at)
                    .await
            }
            Action::Email { .. } => match &self.mailer {
                Some(m) => m.send(event, occ, attempt, started_at).await,
                None => Delivered::failed(
                    attempt,
                    started_at,
                    "email: no SMTP server is configured (smtp.host)".into(),
                    true,
                ),
            },
            // Claimed while its event was being changed to `pull`: back to the queue at once.
            Action::Pull { queue } => {
                let mut d = Delivered::failed(
                    attempt,
                    started_at,
                    format!("the event's action is now pull: returned to queue '{queue}'"),
                    false,
                );
                d.retry_after = Some(Duration::ZERO);
                d
            }
        }
    }

    async fn deliver_http(
        &self,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        timeout: Duration,
        started_at: i64,
    ) -> Delivered {
        let clock = Instant::now();
        if let Err(e) = self
            .guard
            .check_literal(event.action.url().unwrap_or_default())
        {
            return Delivered::failed(attempt, started_at, format!("refused: {e}"), true);
        }
        let vars = || {
            Vars::with_cause(
                event,
                &occ.id.to_string(),
                occ.scheduled_at,
                started_at,
                attempt,
                occ.cause.as_deref(),
            )
        };
        let request = match &event.action {
            Action::Webhook {
                url,
                body: Some(template),
                ..
            } => {
                let (body, content_type) = match render_body_off_thread(template, vars()).await {
                    Ok(serde_json::Value::String(s)) => {
                        (s.into_bytes(), "text/plain; charset=utf-8")
                    }
                    Ok(v) => (
                        serde_json::to_vec(&v).unwrap_or_default(),
                        "application/json",
                    ),
                    Err(e) => return Delivered::failed(attempt, started_at, e, true),
                };
                self.signed(event, occ, url, body, content_type, started_at)
            }
            Action::Webhook {
                url, body: None, ..
            } => {
                let body = WebhookBody {
                    event_id: event.id.to_string(),
                    occurrence_id: occ.id.to_string(),
                    name: &event.name,
                    description: event.description.as_deref(),
                    scheduled_at: fmt_ms(occ.scheduled_at),
                    ends_at: occ
                        .ends_at
                        .or_else(|| event.ends_at(occ.scheduled_at))
                        .map(fmt_ms),
                    dispatched_at: fmt_ms(started_at),
                    attempt,
                    metadata: &event.metadata,
                    tags: &event.tags,
                };
                let body = serde_json::to_vec(&body).unwrap_or_default();
                self.signed(event, occ, url, body, "application/json", started_at)
            }
            Action::Apicall {
                method,
                url,
                headers,
                body,
                ..
            } => {
                let method =
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
                let mut h = HeaderMap::new();
                // `Host` is refused when an event is saved; one stored before that is not sent.
                for (k, v) in headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
                {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        h.insert(k, v);
                    }
                }
                let mut r = self.client.request(method, url);
                r = r
                    .headers(h.clone())
                    .header("webhook-id", occ.id.to_string());
                let body = match body {
                    Some(b) => match render_body_off_thread(b, vars()).await {
                        Ok(v) => Some(v),
                        Err(e) => return Delivered::failed(attempt, started_at, e, true),
                    },
                    None => None,
                };
                match body {
                    Some(serde_json::Value::String(s)) => r.body(s),
                    Some(v) => {
                        let r = r.body(serde_json::to_vec(&v).unwrap_or_default());
                        if h.contains_key(CONTENT_TYPE) {
                            r
                        } else {
                            r.header(CONTENT_TYPE, "application/json")
                        }
                    }
                    None => r,
                }
            }
            _ => return Delivered::failed(attempt, started_at, "not an HTTP action".into(), true),
        };
        let result = request.timeout(timeout).send().await;
        let mut d = Delivered {
            attempt: Attempt {
                attempt,
                started_at,
                duration_ms: 0,
                status_code: None,
                error: None,
                response: None,
            },
            success: false,
            permanent: false,
            gone: false,
            retry_after: None,
        };
        match result {
            Ok(resp) => {
                let status = resp.status();
                d.attempt.status_code = Some(status.as_u16());
                d.success = status.is_success();
                d.gone = status.as_u16() == 410;
                d.permanent = d.gone;
                if status.as_u16() == 429 || status.as_u16() == 503 {
                    d.retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
                }
                if status.is_redirection() {
                    d.attempt.error = Some(format!(
                        "HTTP {}: redirects are not followed; point the event at the final URL",
                        status.as_u16()
                    ));
                } else if !d.success {
                    d.attempt.error = Some(format!("HTTP {}", status.as_u16()));
                }
                d.attempt.response = self.read_excerpt(resp).await;
            }
            Err(e) => {
                d.attempt.error = Some(describe(&e, timeout));
            }
        }
        d.attempt.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        d
    }

    /// A POST of `body` with both signature schemes.
    fn signed(
        &self,
        event: &Event,
        occ: &Occurrence,
        url: &str,
        body: Vec<u8>,
        content_type: &'static str,
        started_at: i64,
    ) -> reqwest::RequestBuilder {
        // Only events created before per-event secrets have none (see api::secrets).
        let secret = event.hmac_secret.as_deref().unwrap_or(&self.default_secret);
        let id = occ.id.to_string();
        let ts = started_at / 1000;
        let mut r = self.client.post(url).header(CONTENT_TYPE, content_type);
        if self.legacy_signature {
            r = r.header(
                "X-Qhronos-Signature",
                signing::qhronos_signature(secret, &body),
            );
        }
        r.header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                self.signatures(event, secret, &id, ts, &body, started_at),
            )
            .body(body)
    }

    /// `webhook-signature`: the current secret's, and during a rotation's grace period the
    /// previous secret's too, space-separated (Standard Webhooks).
    fn signatures(
        &self,
        event: &Event,
        secret: &str,
        id: &str,
        ts: i64,
        body: &[u8],
        now: i64,
    ) -> String {
        let current = signing::standard_signature(secret, id, ts, body);
        match &event.previous_secret {
            Some((prev, until)) if *until > now => {
                let prev = prev.as_deref().unwrap_or(&self.default_secret);
                format!(
                    "{current} {}",
                    signing::standard_signature(prev, id, ts, body)
                )
            }
            _ => current,
        }
    }

    /// Reads at most `excerpt_bytes` of the body (not the whole body: a receiver could answer
    /// with gigabytes).
    async fn read_excerpt(&self, mut resp: reqwest::Response) -> Option<String> {
        let mut buf: Vec<u8> = Vec::new();
        while buf.len() < self.excerpt_bytes {
            match tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await {
                Ok(Ok(Some(chunk))) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
        if buf.is_empty() {
            return None;
        }
        buf.truncate(self.excerpt_bytes);
        Some(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {}", crate::domain::duration::Dur(timeout))
    } else if e.is_connect() {
        let mut msg = String::from("connection failed");
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = src {
            msg = format!("connection failed: {s}");
            src = s.source();
        }
        msg
    } else {
        format!("request failed: {e}")
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past means
/// now.
fn parse_retry_after(v: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let ms = (at.as_millisecond() - now.as_millisecond()).max(0);
    Some(Duration::from_millis(ms.unsigned_abs()))
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now: jiff::Timestamp = "1994-11-06T08:49:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(37))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
