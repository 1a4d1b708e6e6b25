//! The email channel: one message per attempt over the configured SMTP server (lettre), text
//! and HTML as `multipart/alternative` when both are given. The server's reply is recorded like
//! a webhook's response: its code as `status_code`, its text as the excerpt.

use std::time::Instant;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Delivered;
use crate::config::{SmtpConfig, SmtpTls};
use crate::domain::event::Event;
use crate::domain::occurrence::Occurrence;
use crate::domain::template::{self, Vars};
use crate::domain::Millis;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    excerpt_bytes: usize,
}

impl Mailer {
    /// `None` when no SMTP host is configured.
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
        }))
    }

    /// Renders and sends the email of one attempt.
    pub async fn send(
        &self,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        started_at: Millis,
    ) -> Delivered {
        let clock = Instant::now();
        let message = match self.message(event, occ, attempt, started_at).await {
            Ok(m) => m,
            Err(e) => return Delivered::failed(attempt, started_at, e, true),
        };
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
        } = &event.action
        else {
            return Err("not an email action".into());
        };
        let vars = Vars::new(
            event,
            &occ.id.to_string(),
            occ.scheduled_at,
            started_at,
            attempt,
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
