//! Actions: how an occurrence is delivered.

use std::collections::BTreeMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A validated action. Serialises as `{"type": …, "params": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "params", rename_all = "lowercase")]
pub enum Action {
    /// POST of the signed occurrence body to `url`; with `body`, that (a template) instead.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        /// A named `body` template (`POST /templates`) in place of `body`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// The version of `template` the event uses: the newest when the action was saved
        /// (pinned), a version number given, or `"latest"` (always the newest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template_version: Option<TemplateVersion>,
    },
    /// A request exactly as the user wrote it (string values of `body` are templates).
    Apicall {
        method: String,
        url: String,
        /// Write-only values (they often carry downstream credentials): responses give each
        /// name with the value `***`. An update whose action omits `headers` keeps them; a value
        /// given as `***` keeps that header's stored value; to change one, give it with its new
        /// value.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        /// A named `body` template in place of `body`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// As for `webhook`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template_version: Option<TemplateVersion>,
    },
    /// A message to one connected `GET /ws` client of this name, which must acknowledge it.
    Websocket { client_name: String },
    /// Waits in a queue that clients claim from with `POST /queues/{queue}/claim`.
    Pull { queue: String },
    /// An email over the configured SMTP server; subject, text and html are templates.
    Email {
        to: Vec<String>,
        /// Required unless `template` is given (then empty, and not shown).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        /// Set by the server, never by the client: the identity the messages are sent for (the
        /// `jti` of the token that last created or changed the event, or `master`). It counts
        /// against `smtp.max_per_token_per_hour`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(read_only)]
        sender: Option<String>,
        /// A named `email` template in place of `subject`, `text` and `html`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        /// As for `webhook`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template_version: Option<TemplateVersion>,
    },
}

/// Which version of a named template an action uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TemplateVersion {
    /// This version, whatever is saved after it.
    Pinned(i64),
    /// Always the newest version, read at each attempt.
    Latest(Latest),
}

/// `"latest"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Latest {
    Latest,
}

/// What a named template fills in of an action: a body, or an email's parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Filled {
    Body(Value),
    Email {
        subject: String,
        text: Option<String>,
        html: Option<String>,
    },
}

/// `template` and `template_version` of action params, checked: `None` without a template.
fn template_fields(
    p: &serde_json::Map<String, Value>,
) -> Result<(Option<String>, Option<TemplateVersion>), String> {
    let name = match p.get("template") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(check_name("action.params.template", s)?),
        Some(_) => return Err("action.params.template: expected a template name".into()),
    };
    let version = match p.get("template_version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "latest" => Some(TemplateVersion::Latest(Latest::Latest)),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => Some(TemplateVersion::Pinned(n)),
            _ => return Err(
                "action.params.template_version: expected a version number (1, 2, …) or \"latest\""
                    .into(),
            ),
        },
    };
    if name.is_none() && version.is_some() {
        return Err("action.params.template_version: only with action.params.template".into());
    }
    Ok((name, version))
}

const MAX_HEADERS: usize = qhronos_schema::limits::HEADERS_MAX;

/// What responses show in place of an `apicall` header value.
pub const MASKED: &str = "***";

const MAX_RECIPIENTS: usize = qhronos_schema::limits::RECIPIENTS_MAX;
const TYPES: &str = "'webhook', 'apicall', 'websocket', 'pull' or 'email'";

impl Action {
    /// Where the action delivers, as analytics name it: a URL's host, port and path (never
    /// its credentials, query or fragment), an email's recipient domains, a WebSocket client, a
    /// queue. Never a secret the action carries (headers, bodies).
    pub fn target(&self) -> String {
        fn host_path(url: &str) -> String {
            match Url::parse(url) {
                Ok(u) => match u.port() {
                    Some(p) => format!("{}:{p}{}", u.host_str().unwrap_or(""), u.path()),
                    None => format!("{}{}", u.host_str().unwrap_or(""), u.path()),
                },
                Err(_) => "invalid url".to_string(),
            }
        }
        match self {
            Action::Webhook { url, .. } | Action::Apicall { url, .. } => host_path(url),
            Action::Websocket { client_name } => format!("ws:{client_name}"),
            Action::Pull { queue } => format!("queue:{queue}"),
            Action::Email { to, .. } => {
                let mut domains: Vec<&str> = to
                    .iter()
                    .map(|a| a.rsplit_once('@').map_or("", |(_, d)| d))
                    .collect();
                domains.sort_unstable();
                domains.dedup();
                format!("email:{}", domains.join(","))
            }
        }
    }

    /// Parses `{"type", "params"}` from a request, naming what is wrong.
    pub fn parse(v: &Value) -> Result<Action, String> {
        let obj = v
            .as_object()
            .ok_or("action: expected an object {\"type\": …, \"params\": {…}}")?;
        if let Some(k) = obj.keys().find(|k| *k != "type" && *k != "params") {
            return Err(format!(
                "action: unknown field '{k}', expected 'type' and 'params'"
            ));
        }
        let ty = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("action.type is required: {TYPES}"))?;
        let empty = Value::Object(Default::default());
        let params = obj.get("params").unwrap_or(&empty);
        let p = params
            .as_object()
            .ok_or("action.params: expected an object")?;
        match ty {
            "webhook" => {
                only_fields(p, &["url", "body", "template", "template_version"])?;
                let url = str_field(p, "url")?;
                let (template, template_version) = template_fields(p)?;
                if template.is_some() && p.get("body").is_some() {
                    return Err("action.params: give 'body' or 'template', not both".into());
                }
                Ok(Action::Webhook {
                    url: check_url("action.params.url", url)?,
                    body: p.get("body").cloned(),
                    template,
                    template_version,
                })
            }
            "apicall" => {
                only_fields(
                    p,
                    &[
                        "method",
                        "url",
                        "headers",
                        "body",
                        "template",
                        "template_version",
                    ],
                )?;
                let (template, template_version) = template_fields(p)?;
                if template.is_some() && p.get("body").is_some() {
                    return Err("action.params: give 'body' or 'template', not both".into());
                }
                let url = check_url("action.params.url", str_field(p, "url")?)?;
                let method = match p.get("method") {
                    None => "POST".to_string(),
                    Some(m) => {
                        let m = m
                            .as_str()
                            .ok_or("action.params.method: expected a string such as \"POST\"")?
                            .to_ascii_uppercase();
                        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                            .contains(&m.as_str())
                        {
                            return Err(format!(
                                "action.params.method: '{m}' is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
                            ));
                        }
                        m
                    }
                };
                let mut headers = BTreeMap::new();
                if let Some(h) = p.get("headers") {
                    let h = h
                        .as_object()
                        .ok_or("action.params.headers: expected an object of strings")?;
                    if h.len() > MAX_HEADERS {
                        return Err(format!(
                            "action.params.headers: at most {MAX_HEADERS} headers ({} given)",
                            h.len()
                        ));
                    }
                    for (k, v) in h {
                        let v = v.as_str().ok_or_else(|| {
                            format!("action.params.headers.{k}: expected a string")
                        })?;
                        if v == MASKED {
                            return Err(format!(
                                "action.params.headers.{k}: '{MASKED}' is how responses hide a value, and this event has no stored value for it: give the real value"
                            ));
                        }
                        if k.eq_ignore_ascii_case("host") {
                            // The SSRF guard checks the URL's host: a Host header would send the
                            // request to another virtual host behind the checked address.
                            return Err(format!(
                                "action.params.headers.{k}: an apicall may not set Host; the URL's host is sent"
                            ));
                        }
                        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                            || reqwest::header::HeaderValue::from_str(v).is_err()
                        {
                            return Err(format!(
                                "action.params.headers.{k}: not a valid HTTP header"
                            ));
                        }
                        headers.insert(k.clone(), v.to_string());
                    }
                }
                Ok(Action::Apicall {
                    method,
                    url,
                    headers,
                    body: p.get("body").cloned(),
                    template,
                    template_version,
                })
            }
            "websocket" => {
                only_fields(p, &["client_name"])?;
                Ok(Action::Websocket {
                    client_name: check_name(
                        "action.params.client_name",
                        str_field(p, "client_name")?,
                    )?,
                })
            }
            "pull" => {
                only_fields(p, &["queue"])?;
                Ok(Action::Pull {
                    queue: check_name("action.params.queue", str_field(p, "queue")?)?,
                })
            }
            "email" => {
                // `sender` may come back in a partial update's merge; its value is ignored.
                only_fields(
                    p,
                    &[
                        "to",
                        "subject",
                        "text",
                        "html",
                        "sender",
                        "template",
                        "template_version",
                    ],
                )?;
                let (template, template_version) = template_fields(p)?;
                let to = match p.get("to") {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_str().map(str::to_string).ok_or_else(|| {
                                "action.params.to: expected email addresses (strings)".to_string()
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => {
                        return Err("action.params.to is required: a list of email addresses".into())
                    }
                };
                if to.is_empty() || to.len() > MAX_RECIPIENTS {
                    return Err(format!(
                        "action.params.to: 1 to {MAX_RECIPIENTS} addresses ({} given)",
                        to.len()
                    ));
                }
                for a in &to {
                    a.parse::<lettre::message::Mailbox>().map_err(|e| {
                        format!("action.params.to: '{a}' is not an email address ({e})")
                    })?;
                }
                if template.is_some() {
                    if let Some(k) = ["subject", "text", "html"]
                        .iter()
                        .find(|k| p.contains_key(**k))
                    {
                        return Err(format!(
                            "action.params: give '{k}' in the template or here, not both: an email with 'template' takes subject, text and html from it"
                        ));
                    }
                    return Ok(Action::Email {
                        to,
                        subject: String::new(),
                        text: None,
                        html: None,
                        sender: None,
                        template,
                        template_version,
                    });
                }
                let subject = str_field(p, "subject")?.to_string();
                let opt = |k: &str| -> Result<Option<String>, String> {
                    match p.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.clone())),
                        Some(_) => Err(format!("action.params.{k}: expected a string")),
                    }
                };
                let (text, html) = (opt("text")?, opt("html")?);
                if text.is_none() && html.is_none() {
                    return Err("action.params: an email needs 'text', 'html' or both".into());
                }
                Ok(Action::Email {
                    to,
                    subject,
                    text,
                    html,
                    sender: None,
                    template: None,
                    template_version: None,
                })
            }
            t => Err(format!("action.type '{t}' is unknown: expected {TYPES}")),
        }
    }

    /// The legacy `webhook` / `webhook_url` string field: a URL, or `q:<client>` for a
    /// WebSocket client.
    pub fn from_legacy(field: &str, s: &str) -> Result<Action, String> {
        if let Some(client) = s.strip_prefix("q:") {
            return Ok(Action::Websocket {
                client_name: check_name(field, client)?,
            });
        }
        Ok(Action::Webhook {
            url: check_url(field, s)?,
            body: None,
            template: None,
            template_version: None,
        })
    }

    /// The named template of the action and the version it uses, if it names one.
    pub fn template_ref(&self) -> Option<(&str, Option<TemplateVersion>)> {
        match self {
            Action::Webhook {
                template: Some(t),
                template_version,
                ..
            }
            | Action::Apicall {
                template: Some(t),
                template_version,
                ..
            }
            | Action::Email {
                template: Some(t),
                template_version,
                ..
            } => Some((t, *template_version)),
            _ => None,
        }
    }

    /// The template kind the action needs: `body` for webhook and apicall, `email` for email.
    pub fn template_kind(&self) -> Option<&'static str> {
        match self {
            Action::Webhook { .. } | Action::Apicall { .. } => Some("body"),
            Action::Email { .. } => Some("email"),
            _ => None,
        }
    }

    /// Sets the version of the named template (a save pins the newest when none was asked).
    pub fn pin_template(&mut self, v: TemplateVersion) {
        if let Action::Webhook {
            template_version, ..
        }
        | Action::Apicall {
            template_version, ..
        }
        | Action::Email {
            template_version, ..
        } = self
        {
            *template_version = Some(v);
        }
    }

    /// The action with the text of a named template in place (for checking and delivery).
    pub fn filled(&self, with: &Filled) -> Action {
        let mut a = self.clone();
        match (&mut a, with) {
            (Action::Webhook { body, .. } | Action::Apicall { body, .. }, Filled::Body(b)) => {
                *body = Some(b.clone());
            }
            (
                Action::Email {
                    subject,
                    text,
                    html,
                    ..
                },
                Filled::Email {
                    subject: s,
                    text: t,
                    html: h,
                },
            ) => {
                *subject = s.clone();
                *text = t.clone();
                *html = h.clone();
            }
            _ => {}
        }
        a
    }

    /// The action as responses show it: `apicall` header values masked.
    pub fn masked(&self) -> Action {
        let mut a = self.clone();
        if let Action::Apicall { headers, .. } = &mut a {
            for v in headers.values_mut() {
                *v = MASKED.to_string();
            }
        }
        a
    }

    /// The action type, as in `{"type": …}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Webhook { .. } => "webhook",
            Action::Apicall { .. } => "apicall",
            Action::Websocket { .. } => "websocket",
            Action::Pull { .. } => "pull",
            Action::Email { .. } => "email",
        }
    }

    /// Records who an email action sends for (no effect on the other actions).
    pub fn send_as(&mut self, who: String) {
        if let Action::Email { sender, .. } = self {
            *sender = Some(who);
        }
    }

    /// The target URL of the HTTP actions.
    pub fn url(&self) -> Option<&str> {
        match self {
            Action::Webhook { url, .. } | Action::Apicall { url, .. } => Some(url),
            _ => None,
        }
    }

    /// The queue of a pull action.
    pub fn queue(&self) -> Option<&str> {
        match self {
            Action::Pull { queue } => Some(queue),
            _ => None,
        }
    }
}

/// Client and queue names: 1 to 128 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(field: &str, s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > qhronos_schema::limits::KEY_MAX
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{field}: '{s}' is not a valid name (1 to 128 of A-Z, a-z, 0-9, '.', '_', '-')"
        ));
    }
    Ok(s.to_string())
}

fn only_fields(p: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match p.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "action.params: unknown field '{k}', expected {}",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn str_field<'a>(p: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a str, String> {
    p.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("action.params.{k} is required (a string)"))
}

/// Only absolute http(s) URLs with a host.
pub fn check_url(field: &str, s: &str) -> Result<String, String> {
    let url = Url::parse(s).map_err(|e| format!("{field}: '{s}' is not a valid URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "{field}: scheme '{}' is not allowed: only http and https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{field}: '{s}' has no host"));
    }
    Ok(s.to_string())
}

/// On an update: `new` (a raw action from the request) keeps the stored `apicall` header values
/// of `old` (the stored action, raw) when it omits `headers`, and per header where it gives the
/// mask `***` — so an action read from a response can be sent back as it is.
pub fn keep_stored_headers(new: &mut Value, old: &Value) {
    let is_apicall = |v: &Value| v.get("type").and_then(Value::as_str) == Some("apicall");
    if !is_apicall(new) || !is_apicall(old) {
        return;
    }
    let Some(stored) = old.pointer("/params/headers").and_then(Value::as_object) else {
        return;
    };
    let Some(params) = new.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    if !params.contains_key("headers") {
        params.insert("headers".into(), Value::Object(stored.clone()));
        return;
    }
    match params.get_mut("headers").and_then(Value::as_object_mut) {
        None => {}
        Some(given) => {
            for (k, v) in given.iter_mut() {
                if v.as_str() == Some(MASKED) {
                    if let Some(real) = stored.get(k) {
                        *v = real.clone();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_header_values_survive_an_update_that_omits_or_masks_them() {
        let old = json!({"type": "apicall", "params": {"url": "https://x/", "headers": {"Authorization": "Bearer s3", "X-A": "1"}}});
        let mut omitted = json!({"type": "apicall", "params": {"url": "https://y/"}});
        keep_stored_headers(&mut omitted, &old);
        assert_eq!(omitted["params"]["headers"], old["params"]["headers"]);
        let mut masked = json!({"type": "apicall", "params": {"url": "https://x/", "headers": {"Authorization": "***", "X-A": "2"}}});
        keep_stored_headers(&mut masked, &old);
        assert_eq!(
            masked["params"]["headers"],
            json!({"Authorization": "Bearer s3", "X-A": "2"})
        );
        // Headers given as {} remove them all; another type keeps nothing.
        let mut cleared =
            json!({"type": "apicall", "params": {"url": "https://x/", "headers": {}}});
        keep_stored_headers(&mut cleared, &old);
        assert_eq!(cleared["params"]["headers"], json!({}));
        let mut webhook = json!({"type": "webhook", "params": {"url": "https://x/"}});
        keep_stored_headers(&mut webhook, &old);
        assert!(webhook["params"].get("headers").is_none());
    }
}
