//! Payload templates: the string values of a `webhook` or `apicall` body and an email's subject,
//! text and html are minijinja templates, rendered once per attempt.
//!
//! Sandboxed: the environment has no loader (no `include`, `import` or `extends` can reach a
//! file), minijinja has no function that touches the network or the clock, and rendering runs
//! on a fuel budget so that a loop cannot hold a delivery slot. The budget is one for **all**
//! the templates of an action (not one per string: an action of 30,000 small templates would
//! otherwise cost 30,000 budgets), and one for all the templates of a `POST /events/batch`
//! when the batch is test-rendered. Compiling a template costs fuel too (the meter does not see
//! the parser), by its length. Rendering is CPU work: callers run it on the blocking pool
//! (`spawn_blocking`), never on the async workers. A template is compiled and rendered once
//! against the event itself when it is created or changed, so a syntax error, an unknown filter
//! or an action over the budget is a 400 then, naming the field, not a failure at fire time.

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::{json, Map, Value};

use super::action::Action;
use super::event::Event;
use super::{fmt_ms, Millis};

/// Fuel all the templates of one action may use together, at creation or in one attempt
/// (about 5 ms of rendering on one core in a release build; `{{ event.name }}` costs 35 with
/// its compilation, so an action holds at most about 5,700 such templates).
pub const ACTION_FUEL: u64 = 200_000;
/// Fuel all the templates of one `POST /events/batch` may use together when they are
/// test-rendered (the batch's items share it, so 1,000 items may average `ACTION_FUEL / 20`).
pub const BATCH_FUEL: u64 = 2_000_000;
/// Fuel charged for compiling a template, plus one per `COMPILE_BYTES` of its source: measured,
/// compiling and rendering `{{ event.name }}` takes as long as about 40 instructions of a loop.
const COMPILE_FUEL: u64 = 30;
const COMPILE_BYTES: u64 = 16;
/// Largest rendered string, so a template cannot blow a small body up into gigabytes.
const MAX_OUTPUT: usize = 1 << 20;

/// What a template sees: `event`, `occurrence` and `metadata` (the event's, for short), and for
/// a workflow's follow-up `cause` (the occurrence that caused it: `cause.event`,
/// `cause.occurrence`, `cause.attempt`, `cause.metadata`, `cause.workflow`).
#[derive(Debug, Clone)]
pub struct Vars {
    /// Converted once: every template of an action renders against the same value.
    ctx: minijinja::Value,
}

impl Vars {
    pub fn new(
        event: &Event,
        occurrence_id: &str,
        scheduled_at: Millis,
        dispatched_at: Millis,
        attempt: u32,
    ) -> Vars {
        Vars::with_cause(
            event,
            occurrence_id,
            scheduled_at,
            dispatched_at,
            attempt,
            None,
        )
    }

    /// As [`Vars::new`], with the cause a workflow's follow-up keeps (`None`: no `cause`).
    pub fn with_cause(
        event: &Event,
        occurrence_id: &str,
        scheduled_at: Millis,
        dispatched_at: Millis,
        attempt: u32,
        cause: Option<&Value>,
    ) -> Vars {
        let mut ctx = json!({
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
                "ends_at": event.ends_at(scheduled_at).map(fmt_ms),
                "dispatched_at": fmt_ms(dispatched_at),
                "attempt": attempt,
            },
            "metadata": event.metadata,
        });
        // Without a cause (not a follow-up, or the check at save) its parts are empty, so that
        // `{{ cause.event.name }}` renders as nothing instead of failing.
        let cause = cause.cloned().unwrap_or_else(|| {
            json!({"event": {}, "occurrence": {}, "attempt": {}, "metadata": {}, "workflow": {}})
        });
        if let Some(o) = ctx.as_object_mut() {
            o.insert("cause".into(), cause);
        }
        Vars {
            ctx: minijinja::Value::from(minijinja::value::Serde(ctx)),
        }
    }
}

impl Vars {
    /// A context given as it is (`POST /templates/{name}/render`): a JSON object whose keys
    /// are the template's variables.
    pub fn from_context(ctx: &Value) -> Vars {
        Vars {
            ctx: minijinja::Value::from(minijinja::value::Serde(ctx.clone())),
        }
    }

    /// What an event's first occurrence would see (`check_with`), as JSON: a template's
    /// default sample context.
    pub fn sample_json() -> Value {
        json!({
            "event": {"id": "00000000-0000-0000-0000-000000000000", "name": "example", "description": null, "tags": [], "metadata": {}},
            "occurrence": {"id": "00000000-0000-0000-0000-000000000000", "scheduled_at": "2026-01-01T00:00:00Z", "ends_at": null, "dispatched_at": "2026-01-01T00:00:00Z", "attempt": 1},
            "metadata": {},
        })
    }
}

/// True when `source` has template syntax (a string without it is itself: no engine, no fuel).
fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// True when some string inside `v` is a template.
pub fn has_templates(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(a) => a.iter().any(has_templates),
        Value::Object(o) => o.values().any(has_templates),
        _ => false,
    }
}

/// A template that does not compile or render: the message names the field; `line` and
/// `column` (1-based, in characters) say where in the field's source, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// One fuel budget shared by every template rendered through it.
pub struct Budget {
    env: Environment<'static>,
    total: u64,
    remaining: u64,
    /// What the budget is for, in error messages: "action" or "batch request".
    what: &'static str,
}

impl Budget {
    /// The budget of one action (`ACTION_FUEL`).
    pub fn action() -> Budget {
        Budget::new(ACTION_FUEL, ACTION_FUEL, "action")
    }

    /// `fuel` left of a budget of `total` for `what` ("action" or "batch request").
    fn new(fuel: u64, total: u64, what: &'static str) -> Budget {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        // Spans on errors (their line and column); messages are built by `describe`.
        env.set_debug(true);
        Budget {
            env,
            total,
            remaining: fuel,
            what,
        }
    }

    fn exhausted(&self, field: &str) -> String {
        format!(
            "{field}: the templates of this {} need more than its budget of {} instructions (one budget for all the templates of an {}; use fewer or simpler templates)",
            self.what,
            self.total,
            if self.what == "action" {
                "action"
            } else {
                "event batch, shared by its items"
            },
        )
    }

    /// Renders one template string, charging its compilation and its render to the budget.
    pub fn render(&mut self, field: &str, source: &str, vars: &Vars) -> Result<String, String> {
        self.render_located(field, source, vars)
            .map_err(|e| e.message)
    }

    /// [`Budget::render`], the error with its line and column in `source` when known.
    pub fn render_located(
        &mut self,
        field: &str,
        source: &str,
        vars: &Vars,
    ) -> Result<String, TemplateError> {
        let plain = |message: String| TemplateError {
            message,
            line: None,
            column: None,
        };
        if !is_template(source) {
            return Ok(source.to_string());
        }
        let compile = COMPILE_FUEL.saturating_add(source.len() as u64 / COMPILE_BYTES);
        if compile >= self.remaining {
            self.remaining = 0;
            return Err(plain(self.exhausted(field)));
        }
        self.remaining -= compile;
        self.env.set_fuel(Some(self.remaining));
        let rendered = self
            .env
            .template_from_str(source)
            .and_then(|t| t.render_captured(vars.ctx.clone()));
        let captured = match rendered {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::OutOfFuel => {
                self.remaining = 0;
                return Err(plain(self.exhausted(field)));
            }
            Err(e) => {
                let (line, column) = locate(&e, source);
                return Err(TemplateError {
                    message: format!("{field}: template error: {}", describe(&e, source)),
                    line,
                    column,
                });
            }
        };
        let consumed = captured
            .state()
            .fuel_levels()
            .map_or(self.remaining, |(used, _)| used);
        self.remaining = self.remaining.saturating_sub(consumed);
        let out = captured.output();
        if out.len() > MAX_OUTPUT {
            return Err(plain(format!(
                "{field}: the rendered template is larger than {} KiB",
                MAX_OUTPUT / 1024
            )));
        }
        Ok(out.to_string())
    }

    /// Renders every string inside a JSON value (object keys stay as written).
    pub fn render_json(&mut self, field: &str, v: &Value, vars: &Vars) -> Result<Value, String> {
        self.render_json_located(field, v, vars)
            .map_err(|e| e.message)
    }

    /// [`Budget::render_json`], the error located in the string that failed.
    pub fn render_json_located(
        &mut self,
        field: &str,
        v: &Value,
        vars: &Vars,
    ) -> Result<Value, TemplateError> {
        Ok(match v {
            Value::String(s) => Value::String(self.render_located(field, s, vars)?),
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    out.push(self.render_json_located(&format!("{field}[{i}]"), x, vars)?);
                }
                Value::Array(out)
            }
            Value::Object(o) => {
                let mut m = Map::new();
                for (k, x) in o {
                    m.insert(
                        k.clone(),
                        self.render_json_located(&format!("{field}.{k}"), x, vars)?,
                    );
                }
                Value::Object(m)
            }
            other => other.clone(),
        })
    }
}

/// Renders one template string under a budget of its own (tests, and one-off strings).
pub fn render(field: &str, source: &str, vars: &Vars) -> Result<String, String> {
    Budget::action().render(field, source, vars)
}

/// Renders every string inside a JSON value under one action budget.
pub fn render_json(field: &str, v: &Value, vars: &Vars) -> Result<Value, String> {
    Budget::action().render_json(field, v, vars)
}

/// The error's message with where it is: `(line L, column C)`, 1-based, when known.
fn describe(e: &minijinja::Error, source: &str) -> String {
    let msg = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    match locate(e, source) {
        (Some(l), Some(c)) => format!("{msg} (line {l}, column {c})"),
        (Some(l), None) => format!("{msg} (line {l})"),
        _ => msg,
    }
}

/// 1-based line and column (in characters) of an error in `source`, when minijinja knows them.
pub fn locate(e: &minijinja::Error, source: &str) -> (Option<usize>, Option<usize>) {
    match e.range() {
        Some(r) if r.start <= source.len() && source.is_char_boundary(r.start) => {
            let before = &source[..r.start];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            (Some(line), Some(before[start..].chars().count() + 1))
        }
        _ => (e.line(), None),
    }
}

/// Compiles and renders every template of an action against the event, as its first
/// occurrence would see them, under `budget`; the error names the field. CPU work: call it
/// from the blocking pool.
pub fn check_with(budget: &mut Budget, event: &Event) -> Result<(), String> {
    let vars = || {
        Vars::new(
            event,
            "00000000-0000-0000-0000-000000000000",
            event.start_time,
            event.start_time,
            1,
        )
    };
    match &event.action {
        Action::Webhook {
            body: Some(body), ..
        }
        | Action::Apicall {
            body: Some(body), ..
        } if has_templates(body) => budget
            .render_json("action.params.body", body, &vars())
            .map(drop),
        Action::Email {
            subject,
            text,
            html,
            ..
        } => {
            let vars = vars();
            budget.render("action.params.subject", subject, &vars)?;
            if let Some(t) = text {
                budget.render("action.params.text", t, &vars)?;
            }
            if let Some(h) = html {
                budget.render("action.params.html", h, &vars)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `check_with` under one action budget.
pub fn check(event: &Event) -> Result<(), String> {
    check_with(&mut Budget::action(), event)
}

/// Whether `check_with` has anything to compile: an email's texts, or a webhook or API call
/// body holding template syntax. Cheap (a scan of the body's strings).
fn has_work(event: &Event) -> bool {
    match &event.action {
        Action::Webhook {
            body: Some(body), ..
        }
        | Action::Apicall {
            body: Some(body), ..
        } => has_templates(body),
        Action::Email { .. } => true,
        _ => false,
    }
}

/// Checks the templates of one event on the blocking pool (one action budget); gives the event
/// back. An action without templates is given back at once, without the trip to the pool.
pub async fn check_off_thread(event: Event) -> Result<Event, String> {
    if !has_work(&event) {
        return Ok(event);
    }
    tokio::task::spawn_blocking(move || check(&event).map(|()| event))
        .await
        .map_err(|e| format!("action.params: template check failed: {e}"))?
}

/// Checks the templates of every event of a batch on the blocking pool, under one batch
/// budget (`BATCH_FUEL`) shared by all items, each item also within its own action budget.
/// The error carries the index of the item. Gives the items back.
pub async fn check_batch_off_thread<T: Send + 'static>(
    items: Vec<T>,
    event_of: fn(&T) -> &Event,
) -> Result<Vec<T>, (usize, String)> {
    tokio::task::spawn_blocking(move || {
        let mut left = BATCH_FUEL;
        for (i, item) in items.iter().enumerate() {
            // Whichever limit is nearer names itself when it runs out.
            let mut one = if left < ACTION_FUEL {
                Budget::new(left, BATCH_FUEL, "batch request")
            } else {
                Budget::action()
            };
            let fuel = one.remaining;
            check_with(&mut one, event_of(item)).map_err(|e| (i, e))?;
            left = left.saturating_sub(fuel - one.remaining);
        }
        Ok(items)
    })
    .await
    .map_err(|e| (0, format!("action.params: template check failed: {e}")))?
}

/// Renders a webhook or apicall body for one attempt on the blocking pool, under one action
/// budget. A body without templates is returned as it is, without leaving the async worker.
pub async fn render_body_off_thread(body: &Value, vars: Vars) -> Result<Value, String> {
    if !has_templates(body) {
        return Ok(body.clone());
    }
    let body = body.clone();
    tokio::task::spawn_blocking(move || {
        Budget::action().render_json("action.params.body", &body, &vars)
    })
    .await
    .map_err(|e| format!("action.params.body: rendering failed: {e}"))?
}

/// The rendered subject, text and html of an email for one attempt, on the blocking pool,
/// under one action budget.
pub async fn render_email_off_thread(
    subject: String,
    text: Option<String>,
    html: Option<String>,
    vars: Vars,
) -> Result<(String, Option<String>, Option<String>), String> {
    tokio::task::spawn_blocking(move || {
        let mut b = Budget::action();
        let subject = b.render("action.params.subject", &subject, &vars)?;
        let text = text
            .map(|t| b.render("action.params.text", &t, &vars))
            .transpose()?;
        let html = html
            .map(|h| b.render("action.params.html", &h, &vars))
            .transpose()?;
        Ok((subject, text, html))
    })
    .await
    .map_err(|e| format!("action.params: rendering failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let input: crate::api::event_io::EventIn = serde_json::from_value(json!({
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
    fn all_the_templates_of_an_action_share_one_budget() {
        let mut e = event();
        // 30,000 templates of a few instructions each: over the one budget of the action.
        let many: Vec<Value> = (0..30_000).map(|_| json!("{{ event.name }}")).collect();
        e.action = Action::Webhook {
            url: "https://example.com/".into(),
            body: Some(json!({ "items": many })),
            template: None,
            template_version: None,
        };
        let t = std::time::Instant::now();
        let err = check(&e).unwrap_err();
        assert!(err.starts_with("action.params.body.items["), "{err}");
        assert!(err.contains("budget of 200000"), "{err}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        // A few thousand fit.
        let some: Vec<Value> = (0..2_000).map(|_| json!("{{ event.name }}")).collect();
        e.action = Action::Webhook {
            url: "https://example.com/".into(),
            body: Some(json!(some)),
            template: None,
            template_version: None,
        };
        check(&e).unwrap();
        // Each string alone is well under the budget; together they are not.
        let loops: Vec<Value> = (0..100)
            .map(|_| json!("{% for i in range(1000) %}{% endfor %}"))
            .collect();
        e.action = Action::Webhook {
            url: "https://example.com/".into(),
            body: Some(json!(loops)),
            template: None,
            template_version: None,
        };
        let err = check(&e).unwrap_err();
        assert!(err.contains("budget"), "{err}");
    }

    #[tokio::test]
    async fn a_batch_shares_one_budget_and_the_error_names_the_item() {
        let mut e = event();
        e.action = Action::Webhook {
            url: "https://example.com/".into(),
            body: Some(json!("{% for i in range(10000) %}{% endfor %}")),
            template: None,
            template_version: None,
        };
        // One item: 30,000 instructions, under the action budget.
        check(&e).unwrap();
        // 100 such items: 3,000,000, over the batch budget.
        let items: Vec<Event> = (0..100).map(|_| e.clone()).collect();
        let (index, err) = check_batch_off_thread(items, |e| e).await.unwrap_err();
        assert!((60..=70).contains(&index), "{index}: {err}");
        assert!(err.contains("batch request"), "{err}");
        assert!(err.starts_with("action.params.body"), "{err}");
        let few: Vec<Event> = (0..10).map(|_| e.clone()).collect();
        assert_eq!(check_batch_off_thread(few, |e| e).await.unwrap().len(), 10);
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
        assert!(err.starts_with("f: ") && err.contains("budget"), "{err}");
        // No loader: include cannot reach a file.
        let err = render("f", "{% include '/etc/passwd' %}", &v).unwrap_err();
        assert!(err.contains("template error"), "{err}");
    }
}
