//! Named templates (`/templates`): a body or the parts of an email, saved once under a name
//! and used by actions that say `"template": "<name>"`. Every save is a new version; versions
//! never change. The strings are minijinja templates rendered as inline ones are (see
//! [`super::template`]): the same sandbox, variables and fuel budget.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::action::Filled;
use super::template::{Budget, TemplateError, Vars};

/// What a template fills in: a webhook or apicall `body`, or an email's subject, text and html.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    Body,
    Email,
}

impl TemplateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Body => "body",
            TemplateKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Result<TemplateKind, String> {
        match s {
            "body" => Ok(TemplateKind::Body),
            "email" => Ok(TemplateKind::Email),
            other => Err(format!("kind: '{other}' is not 'body' or 'email'")),
        }
    }
}

/// The content of one version of a template, as a request gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "email", "subject": "{{ event.name }} ran", "text": "Run {{ occurrence.id }} at {{ occurrence.scheduled_at }}", "sample": {"event": {"name": "nightly"}, "occurrence": {"id": "o-1", "scheduled_at": "2026-01-01T00:00:00Z"}}}))]
pub struct TemplateDef {
    pub kind: TemplateKind,
    /// `email`: the subject (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `email`: the plain-text part (`text`, `html` or both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `email`: the HTML part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// `body`: any JSON; its string values are templates (a string alone is sent as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// A context (`{"event": {…}, "occurrence": {…}, "metadata": {…}}`) to check the template
    /// with when it is saved and to render it with by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sample: Option<Value>,
}

/// Most bytes of a template's content (its JSON), so that one cannot fill the database.
const MAX_TEMPLATE: usize = 256 * 1024;

impl TemplateDef {
    /// The fields its kind needs are there and the others are not; `Err` names the field.
    pub fn validate(&self) -> Result<(), String> {
        let size = serde_json::to_vec(self).map_or(usize::MAX, |v| v.len());
        if size > MAX_TEMPLATE {
            return Err(format!(
                "a template is at most {} KiB ({size} bytes given)",
                MAX_TEMPLATE / 1024
            ));
        }
        match self.kind {
            TemplateKind::Body => {
                if let Some(f) = [
                    ("subject", self.subject.is_some()),
                    ("text", self.text.is_some()),
                    ("html", self.html.is_some()),
                ]
                .iter()
                .find(|(_, given)| *given)
                {
                    return Err(format!("{}: only for kind 'email'", f.0));
                }
                if self.body.is_none() {
                    return Err("body is required for kind 'body'".into());
                }
            }
            TemplateKind::Email => {
                if self.body.is_some() {
                    return Err("body: only for kind 'body'".into());
                }
                if self.subject.is_none() {
                    return Err("subject is required for kind 'email'".into());
                }
                if self.text.is_none() && self.html.is_none() {
                    return Err("an email template needs 'text', 'html' or both".into());
                }
            }
        }
        if let Some(s) = &self.sample {
            if !s.is_object() {
                return Err("sample: expected an object (the template's variables)".into());
            }
        }
        Ok(())
    }

    /// What an action using this version fills in.
    pub fn filled(&self) -> Filled {
        match self.kind {
            TemplateKind::Body => Filled::Body(self.body.clone().unwrap_or(Value::Null)),
            TemplateKind::Email => Filled::Email {
                subject: self.subject.clone().unwrap_or_default(),
                text: self.text.clone(),
                html: self.html.clone(),
            },
        }
    }

    /// Renders every part against `context` (default: the sample) laid over what an event
    /// named "example" would see at its first occurrence (objects merged key by key) under one action budget: `{"body": …}` or `{"subject", "text",
    /// "html"}`, or the first error with the field, line and column. CPU work: call it from
    /// the blocking pool.
    pub fn render(&self, context: Option<&Value>) -> Result<Value, (String, TemplateError)> {
        let mut ctx = Vars::sample_json();
        if let Some(given) = context.or(self.sample.as_ref()) {
            overlay(&mut ctx, given);
        }
        let vars = Vars::from_context(&ctx);
        let mut b = Budget::action();
        match self.kind {
            TemplateKind::Body => {
                let body = self.body.clone().unwrap_or(Value::Null);
                let out = b
                    .render_json_located("body", &body, &vars)
                    .map_err(|e| ("body".to_string(), e))?;
                Ok(json!({ "body": out }))
            }
            TemplateKind::Email => {
                let mut out = serde_json::Map::new();
                for (field, src) in [
                    ("subject", &self.subject),
                    ("text", &self.text),
                    ("html", &self.html),
                ] {
                    if let Some(src) = src {
                        let r = b
                            .render_located(field, src, &vars)
                            .map_err(|e| (field.to_string(), e))?;
                        out.insert(field.into(), Value::String(r));
                    }
                }
                Ok(Value::Object(out))
            }
        }
    }
}

/// `top` laid over `base`: objects merged key by key, anything else replaced.
fn overlay(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(subject: &str) -> TemplateDef {
        TemplateDef {
            kind: TemplateKind::Email,
            subject: Some(subject.into()),
            text: Some("hi {{ event.name }}".into()),
            html: None,
            body: None,
            sample: Some(json!({"event": {"name": "nightly"}})),
        }
    }

    #[test]
    fn renders_with_the_sample_or_a_given_context() {
        let t = email("{{ event.name }}!");
        assert_eq!(
            t.render(None).unwrap(),
            json!({"subject": "nightly!", "text": "hi nightly"})
        );
        assert_eq!(
            t.render(Some(&json!({"event": {"name": "x"}}))).unwrap()["subject"],
            "x!"
        );
    }

    #[test]
    fn errors_give_the_field_line_and_column() {
        let t = email("ok\n  {{ event.name | nope }}");
        let (field, e) = t.render(None).unwrap_err();
        assert_eq!(field, "subject");
        assert_eq!(e.line, Some(2), "{e:?}");
        assert!(e.column.is_some_and(|c| c >= 3), "{e:?}");
        assert!(e.message.contains("line 2, column"), "{e:?}");
        let t = email("{{ event.name ");
        let (_, e) = t.render(None).unwrap_err();
        assert_eq!(e.line, Some(1), "{e:?}");
        assert!(e.column.is_some(), "{e:?}");
    }

    #[test]
    fn kinds_need_their_fields() {
        let mut t = email("s");
        t.body = Some(json!({}));
        assert!(t.validate().unwrap_err().contains("body"));
        let b = TemplateDef {
            kind: TemplateKind::Body,
            subject: None,
            text: None,
            html: None,
            body: None,
            sample: None,
        };
        assert!(b.validate().unwrap_err().contains("body is required"));
    }
}
