//! Payload templates: the string values of a `webhook` or `apicall` body and an email's subject,
//! text and html are minijinja templates, rendered once per attempt.
//!
//! Sandboxed: the environment has no loader (no `include`, `import` or `extends` can reach a
//! file), minijinja has no function that touches the network or the clock, and every render
//! runs on a fuel budget so that a loop cannot hold a delivery slot. A template is compiled and
//! rendered once against the event itself when it is created or changed, so a syntax error or
//! an unknown filter is a 400 then, not a failure at fire time.

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{json, Map, Value};

use super::action::Action;
use super::event::Event;
use super::{fmt_ms, Millis};

/// Instructions one render may execute (a loop over a large range runs out, not forever).
const FUEL: u64 = 100_000;
/// Largest rendered string, so a template cannot blow a small body up into gigabytes.
const MAX_OUTPUT: usize = 1 << 20;

/// What a template sees: `event`, `occurrence` and `metadata` (the event's, for short).
#[derive(Debug, Clone)]
pub struct Vars {
    ctx: Value,
}

impl Vars {
    pub fn new(
        event: &Event,
        occurrence_id: &str,
        scheduled_at: Millis,
        dispatched_at: Millis,
        attempt: u32,
    ) -> Vars {
        Vars {
            ctx: json!({
                "event": {
                    "id": event.id.to_string(),
                    "name": event.name,
                    "description": event.description,
                    "tags": event.tags,
                    "metadata": event.metadata,
                },
                "occurrence": {
                    "id": occurrence_id,
                    "scheduled_at": fmt_ms(scheduled_at),
                    "dispatched_at": fmt_ms(dispatched_at),
                    "attempt": attempt,
                },
                "metadata": event.metadata,
            }),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
}

/// Renders one template string.
pub fn render(field: &str, source: &str, vars: &Vars) -> Result<String, String> {
    // A string without template syntax is itself: skip the engine.
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(source.to_string());
    }
    let env = environment();
    let out = env
        .render_str(source, Serde(&vars.ctx))
        .map_err(|e| format!("{field}: template error: {}", describe(&e)))?;
    if out.len() > MAX_OUTPUT {
        return Err(format!(
            "{field}: the rendered template is larger than {} KiB",
            MAX_OUTPUT / 1024
        ));
    }
    Ok(out)
}

/// Renders every string inside a JSON value (object keys stay as written).
pub fn render_json(field: &str, v: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(render(field, s, vars)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| render_json(&format!("{field}[{i}]"), x, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.clone(), render_json(&format!("{field}.{k}"), x, vars)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(line) = e.line() {
        if !msg.contains("line") {
            msg = format!("{msg} (line {line})");
        }
    }
    msg
}

/// Compiles and renders every template of an action against the event, as its first
/// occurrence would see them; the error names the field.
pub fn check(event: &Event) -> Result<(), String> {
    let vars = Vars::new(
        event,
        "00000000-0000-0000-0000-000000000000",
        event.start_time,
        event.start_time,
        1,
    );
    match &event.action {
        Action::Webhook {
            body: Some(body), ..
        }
        | Action::Apicall {
            body: Some(body), ..
        } => render_json("action.params.body", body, &vars).map(drop),
        Action::Email {
            subject,
            text,
            html,
            ..
        } => {
            render("action.params.subject", subject, &vars)?;
            if let Some(t) = text {
                render("action.params.text", t, &vars)?;
            }
            if let Some(h) = html {
                render("action.params.html", h, &vars)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let input: super::super::event::EventIn = serde_json::from_value(json!({
            "name": "nightly",
            "start_time": "2026-01-02T03:04:05Z",
            "action": {"type": "webhook", "params": {"url": "https://example.com/"}},
            "tags": ["ops"],
            "metadata": {"x": 7, "who": "<b>ann</b>"}
        }))
        .unwrap();
        input.validate(uuid::Uuid::nil(), 0, 0).unwrap()
    }

    #[test]
    fn renders_event_occurrence_and_metadata() {
        let e = event();
        let v = Vars::new(&e, "occ-1", e.start_time, e.start_time + 5, 2);
        let out = render(
            "f",
            "{{ event.name }} at {{ occurrence.scheduled_at }} x={{ metadata.x }} #{{ occurrence.attempt }} {{ event.tags | join(',') }}",
            &v,
        )
        .unwrap();
        assert_eq!(out, "nightly at 2026-01-02T03:04:05Z x=7 #2 ops");
        // No auto-escaping unless asked for.
        assert_eq!(render("f", "{{ metadata.who }}", &v).unwrap(), "<b>ann</b>");
        assert_eq!(
            render("f", "{{ metadata.who | e }}", &v).unwrap(),
            "&lt;b&gt;ann&lt;&#x2f;b&gt;"
        );
        let j: Value =
            serde_json::from_str(&render("f", "{{ metadata | tojson }}", &v).unwrap()).unwrap();
        assert_eq!(j, json!({"x": 7, "who": "<b>ann</b>"}));
    }

    #[test]
    fn json_bodies_render_values_not_keys() {
        let e = event();
        let v = Vars::new(&e, "o", 0, 0, 1);
        let out = render_json(
            "body",
            &json!({"{{ k }}": "{{ event.name }}", "n": [1, "{{ metadata.x }}"]}),
            &v,
        )
        .unwrap();
        assert_eq!(out, json!({"{{ k }}": "nightly", "n": [1, "7"]}));
    }

    #[test]
    fn errors_name_the_field_and_loops_run_out_of_fuel() {
        let e = event();
        let v = Vars::new(&e, "o", 0, 0, 1);
        let err = render("action.params.text", "{{ event.name ", &v).unwrap_err();
        assert!(
            err.starts_with("action.params.text: template error"),
            "{err}"
        );
        let err = render("f", "{{ x | no_such_filter }}", &v).unwrap_err();
        assert!(
            err.contains("no_such_filter") || err.contains("unknown filter"),
            "{err}"
        );
        let err = render(
            "f",
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
            &v,
        )
        .unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        // No loader: include cannot reach a file.
        let err = render("f", "{% include '/etc/passwd' %}", &v).unwrap_err();
        assert!(err.contains("template error"), "{err}");
    }
}
