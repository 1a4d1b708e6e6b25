//! The email channel: one message per attempt over the configured SMTP server (lettre), text
//! and HTML as `multipart/alternative` when both are given. The server's reply is recorded like
//! a webhook's response: its code as `status_code`, its text as the excerpt.
//!
//! Not an open relay: every recipient must be in `smtp.allowed_recipients` (an address or a
//! whole `@domain`; empty refuses all), checked when the event is created or changed (422) and
//! again at each attempt (the setting may have changed since). And each sending identity (the
//! token that last created or changed the event; the master token is not counted) may have at
//! most `smtp.max_per_token_per_hour` messages sent in any hour: past it an attempt fails
//! without sending and is retried when the hour has room again. The cap is counted in memory
//! on each node (with N nodes, up to N times the cap), and a restart starts it afresh.
//!
//! Every attempt of one occurrence carries the same `Message-ID` (`<occurrence id@qhronos>`),
//! so a receiving system can drop the duplicate of a retry.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Delivered;
use crate::auth::Principal;
use crate::config::{SmtpConfig, SmtpTls};
use crate::domain::event::Event;
use crate::domain::occurrence::Occurrence;
use crate::domain::template::{self, Vars};
use crate::domain::{now_ms, Millis};

const HOUR_MS: Millis = 3_600_000;

/// The identity an email action sends for: the token's `jti`, or `master`.
pub fn sender_of(p: &Principal) -> String {
    match p {
        Principal::Master => MASTER.into(),
        Principal::Token { jti, .. } => jti.clone(),
    }
}

const MASTER: &str = "master";

/// Checks one entry of `smtp.allowed_recipients`: `user@domain` or `@domain`.
pub fn check_allowed_entry(entry: &str) -> Result<(), String> {
    let ok = match entry.strip_prefix('@') {
        Some(domain) => !domain.is_empty() && !domain.contains('@') && !domain.contains(' '),
        None => entry.parse::<lettre::Address>().is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "smtp.allowed_recipients: '{entry}' is neither an address (ann@example.com) nor a domain (@example.com)"
        ))
    }
}

/// Refuses a recipient list unless every address is allowed by `allowed` (the entries of
/// `smtp.allowed_recipients`): an equal address, or an entry `@domain` of its domain (case
/// does not matter). The message names the setting.
pub fn check_recipients(allowed: &[String], to: &[String]) -> Result<(), String> {
    if allowed.is_empty() {
        return Err("action.params.to: smtp.allowed_recipients is empty, so no recipient is allowed: the operator lists the addresses and @domains that may be mailed (see docs/configuration.md)".into());
    }
    for a in to {
        let addr = a
            .parse::<Mailbox>()
            .map_err(|e| format!("action.params.to: '{a}': {e}"))?
            .email;
        let (user, domain) = (addr.user().to_lowercase(), addr.domain().to_lowercase());
        let allowed_here = allowed.iter().any(|entry| {
            let entry = entry.to_lowercase();
            match entry.strip_prefix('@') {
                Some(d) => d == domain,
                None => entry == format!("{user}@{domain}"),
            }
        });
        if !allowed_here {
            return Err(format!(
                "action.params.to: '{addr}' is not in smtp.allowed_recipients (the addresses and @domains the operator allows)"
            ));
        }
    }
    Ok(())
}

/// Messages sent per identity in the last hour (on this node).
struct HourlyCap {
    max: u32,
    sent: Mutex<HashMap<String, VecDeque<Millis>>>,
}

impl HourlyCap {
    /// Counts a message for `who` at `now`; when the hour is full, `Err(wait)` until a slot
    /// frees up instead.
    fn take(&self, who: &str, now: Millis) -> Result<(), Duration> {
        if self.max == 0 || who == MASTER {
            return Ok(());
        }
        let mut g = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() > 4096 {
            g.retain(|_, q| q.back().is_some_and(|t| *t > now - HOUR_MS));
        }
        let q = g.entry(who.to_string()).or_default();
        while q.front().is_some_and(|t| *t <= now - HOUR_MS) {
            q.pop_front();
        }
        if q.len() >= self.max as usize {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = (oldest + HOUR_MS - now).max(1);
            return Err(Duration::from_millis(wait.unsigned_abs()));
        }
        q.push_back(now);
        Ok(())
    }
}

/// Sends the email attempts: one SMTP transport for the configured server, and the hourly cap.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    excerpt_bytes: usize,
    allowed: Vec<String>,
    cap: HourlyCap,
}

impl Mailer {
    /// `None` when no SMTP host is configured. `Err` when `smtp.from` is not a mailbox or TLS
    /// cannot be set up for the host. Connects to nothing yet.
    pub fn new(cfg: &SmtpConfig, excerpt_bytes: usize) -> anyhow::Result<Option<Mailer>> {
        let Some(host) = cfg.host.as_deref().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(cfg.port)
            .timeout(Some(cfg.timeout.0));
        b = match cfg.tls {
            SmtpTls::None => b.tls(Tls::None),
            SmtpTls::Starttls => b.tls(Tls::Required(TlsParameters::new(host.to_string())?)),
            SmtpTls::Tls => b.tls(Tls::Wrapper(TlsParameters::new(host.to_string())?)),
        };
        if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let from = cfg
            .from
            .parse::<Mailbox>()
            .map_err(|e| anyhow::anyhow!("smtp.from: {e}"))?;
        Ok(Some(Mailer {
            transport: b.build(),
            from,
            excerpt_bytes,
            allowed: cfg.allowed_recipients.clone(),
            cap: HourlyCap {
                max: cfg.max_per_token_per_hour,
                sent: Mutex::new(HashMap::new()),
            },
        }))
    }

    /// Renders and sends the email of one attempt; never fails (every problem is a
    /// [`Delivered`] with its error). A recipient no longer allowed, a template that does not
    /// render, or a permanent SMTP reply (5xx) fails permanently; the cap fails without sending,
    /// with `retry_after` set to when the hour has room; a transient SMTP error is retried.
    /// The SMTP reply code is the attempt's `status_code`, its text the excerpt.
    pub async fn send(
        &self,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        started_at: Millis,
    ) -> Delivered {
        let clock = Instant::now();
        let crate::domain::action::Action::Email { to, sender, .. } = &event.action else {
            return Delivered::failed(attempt, started_at, "not an email action".into(), true);
        };
        if let Err(e) = check_recipients(&self.allowed, to) {
            return Delivered::failed(attempt, started_at, e, true);
        }
        let message = match self.message(event, occ, attempt, started_at).await {
            Ok(m) => m,
            Err(e) => return Delivered::failed(attempt, started_at, e, true),
        };
        // Events from before the cap have no sender: they share one count.
        let who = sender.as_deref().unwrap_or("(unknown sender)");
        if let Err(wait) = self.cap.take(who, now_ms()) {
            let mut d = Delivered::failed(
                attempt,
                started_at,
                format!(
                    "smtp.max_per_token_per_hour: the token this event sends for had {} messages sent in the last hour; retried in {}",
                    self.cap.max,
                    crate::domain::duration::Dur(wait)
                ),
                false,
            );
            d.retry_after = Some(wait);
            return d;
        }
        let result = self.transport.send(message).await;
        let mut d = Delivered::failed(attempt, started_at, String::new(), false);
        match result {
            Ok(resp) => {
                d.success = true;
                d.attempt.error = None;
                d.attempt.status_code = Some(code(&resp.code()));
                d.attempt.response =
                    Some(self.excerpt(resp.message().collect::<Vec<_>>().join("\n")));
            }
            Err(e) => {
                d.permanent = e.is_permanent();
                d.attempt.status_code = e.status().map(|c| code(&c));
                d.attempt.error = Some(format!("smtp: {e}"));
            }
        }
        d.attempt.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        d
    }

    async fn message(
        &self,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        started_at: Millis,
    ) -> Result<Message, String> {
        let crate::domain::action::Action::Email {
            to,
            subject,
            text,
            html,
            ..
        } = &event.action
        else {
            return Err("not an email action".into());
        };
        let vars = Vars::with_cause(
            event,
            &occ.id.to_string(),
            occ.scheduled_at,
            started_at,
            attempt,
            occ.cause.as_deref(),
        );
        let (subject, text, html) =
            template::render_email_off_thread(subject.clone(), text.clone(), html.clone(), vars)
                .await?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            // One id per occurrence: a receiving system can drop a duplicate after a retry.
            .message_id(Some(format!("<{}@qhronos>", occ.id)));
        for a in to {
            let mb = a
                .parse::<Mailbox>()
                .map_err(|e| format!("action.params.to: '{a}': {e}"))?;
            b = b.to(mb);
        }
        let built = match (text, html) {
            (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(t, h)),
            (Some(t), None) => b.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(t),
            ),
            (None, Some(h)) => {
                b.singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(h))
            }
            (None, None) => {
                return Err("action.params: an email needs 'text', 'html' or both".into())
            }
        };
        built.map_err(|e| format!("email: {e}"))
    }

    fn excerpt(&self, mut s: String) -> String {
        if s.len() > self.excerpt_bytes {
            let mut cut = self.excerpt_bytes;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        s
    }
}

fn code(c: &lettre::transport::smtp::response::Code) -> u16 {
    c.to_string().parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::event_io::EventIn;
    use serde_json::json;
    use uuid::Uuid;

    #[tokio::test]
    async fn delivery_checks_the_recipients_again_and_never_connects_for_a_refused_one() {
        // Allowed when the event was made; the operator has since narrowed the list.
        let cfg = SmtpConfig {
            host: Some("127.0.0.1".into()),
            port: 9,
            tls: SmtpTls::None,
            allowed_recipients: vec!["@example.org".into()],
            ..SmtpConfig::default()
        };
        let mailer = Mailer::new(&cfg, 100).unwrap().unwrap();
        let input: EventIn = serde_json::from_value(json!({
            "name": "m", "start_time": "2026-01-01T00:00:00Z",
            "action": {"type": "email", "params": {"to": ["a@example.com"], "subject": "s", "text": "t"}},
        }))
        .unwrap();
        let event = input.validate(Uuid::now_v7(), 0, 0).unwrap();
        let occ = Occurrence::fixture(event.id);
        let d = mailer.send(&event, &occ, 1, now_ms()).await;
        assert!(d.permanent && !d.success);
        let err = d.attempt.error.unwrap();
        assert!(
            err.contains("'a@example.com' is not in smtp.allowed_recipients"),
            "{err}"
        );
    }

    #[test]
    fn the_hourly_cap_slides_and_spares_the_master_token() {
        let cap = HourlyCap {
            max: 2,
            sent: Mutex::new(HashMap::new()),
        };
        let t = 1_000_000_000;
        assert!(cap.take("jti-a", t).is_ok());
        assert!(cap.take("jti-a", t + 10).is_ok());
        assert_eq!(
            cap.take("jti-a", t + 20),
            Err(Duration::from_millis((HOUR_MS - 20) as u64))
        );
        assert!(cap.take("jti-b", t + 20).is_ok(), "each token counts alone");
        for _ in 0..10 {
            assert!(cap.take(MASTER, t).is_ok());
        }
        assert!(
            cap.take("jti-a", t + HOUR_MS).is_ok(),
            "the first left the hour"
        );
        assert!(cap.take("jti-a", t + HOUR_MS + 5).is_err());
        assert!(cap.take("jti-a", t + HOUR_MS + 10).is_ok());
    }

    #[test]
    fn allowed_recipients_match_addresses_and_whole_domains() {
        let allowed = vec!["Ann@Example.com".to_string(), "@partner.org".to_string()];
        assert!(check_recipients(&allowed, &["ann@example.COM".into()]).is_ok());
        assert!(check_recipients(&allowed, &["Bo <bo@PARTNER.org>".into()]).is_ok());
        assert!(check_recipients(&allowed, &["bo@example.com".into()]).is_err());
        assert!(check_recipients(&allowed, &["bo@sub.partner.org".into()]).is_err());
        assert!(check_recipients(&allowed, &["bo@partner.org.evil".into()]).is_err());
        assert!(check_recipients(&[], &["ann@example.com".into()])
            .unwrap_err()
            .contains("smtp.allowed_recipients is empty"));
        assert!(check_allowed_entry("@example.com").is_ok());
        assert!(check_allowed_entry("ann@example.com").is_ok());
        assert!(check_allowed_entry("example.com").is_err());
        assert!(check_allowed_entry("@").is_err());
    }
}
