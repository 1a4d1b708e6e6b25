//! Named templates and their versions (`/templates`).
//!
//! A template is a name, a kind and a list of versions numbered from 1; every save adds a
//! version and versions never change, so an event pinned to version n renders the same text
//! until it is changed. Deleting a template removes its versions; it is refused while a live
//! (not deleted) event's action names it.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::sql::rows::{to_json, RowExt};
use super::sql::{fetch_one, query, Dialect, Push};
use super::{Backend, Result, StoreError};
use crate::domain::action::{Action, TemplateVersion};
use crate::domain::named_template::{TemplateDef, TemplateKind};
use crate::domain::Millis;

/// One version of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// This version's number (1, 2, …).
    pub version: i64,
    /// Its content.
    pub def: TemplateDef,
    /// When this version was saved, and by whom (an audit actor).
    pub saved_at: Millis,
    /// Who saved it.
    pub actor: String,
    /// When the template was first created.
    pub created_at: Millis,
}

/// What `delete_template` did.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateDeleted {
    /// It was deleted with all its versions.
    Deleted,
    /// No template of that name.
    NotFound,
    /// Live events name it (at most 100 of them, oldest first); nothing removed.
    InUse(Vec<TemplateUser>),
}

/// A live event whose action names a template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateUser {
    /// The event's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its tags (for the caller's scope).
    pub tags: Vec<String>,
}

/// Named templates, versioned.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Creates the template with its version 1; `None` (nothing written) when the name is taken.
    async fn create_template(
        &self,
        name: &str,
        def: &TemplateDef,
        actor: &str,
        now: Millis,
    ) -> Result<Option<Template>>;
    /// Saves `def` as the next version (concurrent saves get distinct numbers); `None` when
    /// the template does not exist.
    async fn update_template(
        &self,
        name: &str,
        def: &TemplateDef,
        actor: &str,
        now: Millis,
    ) -> Result<Option<Template>>;
    /// The version asked for, or the newest with `None`.
    async fn get_template(&self, name: &str, version: Option<i64>) -> Result<Option<Template>>;
    /// The newest version of each template, by name, at most `limit` after the name `after`.
    async fn list_templates(&self, after: Option<&str>, limit: i64) -> Result<Vec<Template>>;
    /// Every version of a template, newest first (empty when it does not exist).
    async fn template_versions(&self, name: &str) -> Result<Vec<Template>>;
    /// Deletes the template and its versions unless a live event names it.
    async fn delete_template(&self, name: &str) -> Result<TemplateDeleted>;
}

/// Why an action's named template could not be filled in.
#[derive(Debug)]
pub enum Fill {
    /// The template, or the version, does not exist, or is of another kind (the message says
    /// which, naming it): permanent.
    Missing(String),
    /// The store could not be read: try again.
    Store(StoreError),
}

/// The action with the text of the template version it uses in place, and that version's
/// number; `None` when it names no template. `"latest"` (or no version yet) reads the newest.
pub async fn fill<S: TemplateStore + ?Sized>(
    store: &S,
    action: &Action,
) -> std::result::Result<Option<(Action, i64)>, Fill> {
    let Some((name, version)) = action.template_ref() else {
        return Ok(None);
    };
    let asked = match version {
        Some(TemplateVersion::Pinned(n)) => Some(n),
        _ => None,
    };
    let t = store
        .get_template(name, asked)
        .await
        .map_err(Fill::Store)?
        .ok_or_else(|| {
            Fill::Missing(match asked {
                Some(n) => format!("action.params.template: template '{name}' has no version {n}"),
                None => format!(
                    "action.params.template: no template named '{name}' (create it with POST /templates)"
                ),
            })
        })?;
    let want = action.template_kind().unwrap_or("body");
    if t.def.kind.as_str() != want {
        return Err(Fill::Missing(format!(
            "action.params.template: template '{name}' is of kind '{}'; a {} action needs a '{want}' template",
            t.def.kind.as_str(),
            action.kind()
        )));
    }
    Ok(Some((action.filled(&t.def.filled()), t.version)))
}

const COLS: &str = "v.name, v.version, v.kind, v.subject, v.text, v.html, v.body, v.sample, \
     v.created_at AS saved_at, v.actor, t.created_at";

fn read<R: RowExt>(r: &R) -> Result<Template> {
    let kind = TemplateKind::parse(&r.text("kind")?).map_err(StoreError::Corrupt)?;
    let doc = |col: &str| -> Result<Option<Value>> {
        r.opt_text(col)?
            .map(|s| serde_json::from_str(&s).map_err(|e| super::sql::rows::corrupt(col, e)))
            .transpose()
    };
    Ok(Template {
        name: r.text("name")?,
        version: r.int("version")?,
        def: TemplateDef {
            kind,
            subject: r.opt_text("subject")?,
            text: r.opt_text("text")?,
            html: r.opt_text("html")?,
            body: doc("body")?,
            sample: doc("sample")?,
        },
        saved_at: r.int("saved_at")?,
        actor: r.text("actor")?,
        created_at: r.int("created_at")?,
    })
}

fn select<D: Dialect>() -> sqlx::QueryBuilder<D> {
    query::<D>(format!(
        "SELECT {COLS} FROM template_versions v JOIN templates t ON t.name = v.name WHERE "
    ))
}

async fn insert_version<D: Dialect>(
    c: &mut D::Connection,
    name: &str,
    version: i64,
    def: &TemplateDef,
    actor: &str,
    now: Millis,
) -> Result<()> {
    let mut q = query::<D>(
        "INSERT INTO template_versions (name, version, kind, subject, text, html, body, sample, created_at, actor) VALUES (",
    );
    q.val(name)
        .push(", ")
        .val(version)
        .push(", ")
        .val(def.kind.as_str())
        .push(", ")
        .val(def.subject.clone())
        .push(", ")
        .val(def.text.clone())
        .push(", ")
        .val(def.html.clone())
        .push(", ")
        .val(def.body.as_ref().map(to_json))
        .push(", ")
        .val(def.sample.as_ref().map(to_json))
        .push(", ")
        .val(now)
        .push(", ")
        .val(actor)
        .push(")");
    D::exec(q, c).await?;
    Ok(())
}

async fn one<D: Dialect>(
    c: &mut D::Connection,
    name: &str,
    version: Option<i64>,
) -> Result<Option<Template>> {
    let mut q = select::<D>();
    q.push("v.name = ").val(name).push(" AND v.version = ");
    match version {
        Some(v) => {
            q.val(v);
        }
        None => {
            q.push("t.version");
        }
    }
    fetch_one(q, c).await?.map(|r| read(&r)).transpose()
}

#[async_trait]
impl<B: Backend> TemplateStore for B {
    async fn create_template(
        &self,
        name: &str,
        def: &TemplateDef,
        actor: &str,
        now: Millis,
    ) -> Result<Option<Template>> {
        let mut tx = self.writes().begin().await?;
        let mut q = query::<B::D>(
            "INSERT INTO templates (name, kind, version, created_at, updated_at) VALUES (",
        );
        q.val(name)
            .push(", ")
            .val(def.kind.as_str())
            .push(", 1, ")
            .val(now)
            .push(", ")
            .val(now)
            .push(") ON CONFLICT (name) DO NOTHING");
        if B::D::exec(q, &mut tx).await? == 0 {
            return Ok(None);
        }
        insert_version::<B::D>(&mut tx, name, 1, def, actor, now).await?;
        let t = one::<B::D>(&mut tx, name, Some(1)).await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn update_template(
        &self,
        name: &str,
        def: &TemplateDef,
        actor: &str,
        now: Millis,
    ) -> Result<Option<Template>> {
        let mut tx = self.writes().begin().await?;
        // The row lock (PostgreSQL) or the one writer (SQLite) numbers concurrent saves apart.
        let mut q = query::<B::D>("UPDATE templates SET version = version + 1, kind = ");
        q.val(def.kind.as_str())
            .push(", updated_at = ")
            .val(now)
            .push(" WHERE name = ")
            .val(name)
            .push(" RETURNING version");
        let Some(row) = fetch_one(q, &mut tx).await? else {
            return Ok(None);
        };
        let version = row.int("version")?;
        insert_version::<B::D>(&mut tx, name, version, def, actor, now).await?;
        let t = one::<B::D>(&mut tx, name, Some(version)).await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn get_template(&self, name: &str, version: Option<i64>) -> Result<Option<Template>> {
        let mut c = self.reads().acquire().await?;
        one::<B::D>(&mut c, name, version).await
    }

    async fn list_templates(&self, after: Option<&str>, limit: i64) -> Result<Vec<Template>> {
        let mut q = select::<B::D>();
        q.push("v.version = t.version");
        if let Some(a) = after {
            q.push(" AND t.name > ").val(a);
        }
        q.push(" ORDER BY t.name LIMIT ").val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c).await?.iter().map(read).collect()
    }

    async fn template_versions(&self, name: &str) -> Result<Vec<Template>> {
        let mut q = select::<B::D>();
        q.push("v.name = ")
            .val(name)
            .push(" ORDER BY v.version DESC");
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c).await?.iter().map(read).collect()
    }

    async fn delete_template(&self, name: &str) -> Result<TemplateDeleted> {
        let mut tx = self.writes().begin().await?;
        // Lock the template first (PostgreSQL), so that the events read below are all there are
        // for this delete.
        let mut q = query::<B::D>("SELECT name FROM templates WHERE name = ");
        q.val(name).push(B::D::FOR_UPDATE);
        if fetch_one(q, &mut tx).await?.is_none() {
            tx.rollback().await?;
            return Ok(TemplateDeleted::NotFound);
        }
        let mut q = query::<B::D>(format!(
            "SELECT id, name, tags FROM events WHERE status != 'deleted' AND {} = ",
            B::D::json_text("action", &["params", "template"])
        ));
        q.val(name).push(" ORDER BY id LIMIT 100");
        let users = B::D::fetch(q, &mut tx).await?;
        if !users.is_empty() {
            // Explicitly: a dropped transaction is rolled back only later, holding the lock.
            tx.rollback().await?;
            return Ok(TemplateDeleted::InUse(
                users
                    .iter()
                    .map(|r| {
                        Ok(TemplateUser {
                            id: r.id("id")?,
                            name: r.text("name")?,
                            tags: r.json("tags")?,
                        })
                    })
                    .collect::<Result<_>>()?,
            ));
        }
        let mut q = query::<B::D>("DELETE FROM template_versions WHERE name = ");
        q.val(name);
        B::D::exec(q, &mut tx).await?;
        let mut q = query::<B::D>("DELETE FROM templates WHERE name = ");
        q.val(name);
        B::D::exec(q, &mut tx).await?;
        tx.commit().await?;
        Ok(TemplateDeleted::Deleted)
    }
}
