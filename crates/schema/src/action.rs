//! How an occurrence is delivered, as a request gives it: `{"type": …, "params": {…}}`.

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
};
use utoipa::openapi::{Object, Schema};

use crate::fields::{email, http_url, int, key, text};
use crate::limits::{HEADERS_MAX, RECIPIENTS_MAX};

/// The HTTP methods of an `apicall`.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn closed() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
}

/// `{"type": kind, "params": params}`.
fn variant(kind: &str, description: &str, params: Object) -> Object {
    closed()
        .description(Some(description))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([kind])),
        )
        .property("params", params)
        .required("type")
        .required("params")
        .build()
}

fn template_version() -> Schema {
    OneOfBuilder::new()
        .item(int(1, i64::MAX as u64))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["latest"])),
        )
        .description(Some(
            "The version of `template`: a number, or \"latest\" (always the newest); default: the newest, pinned when saved",
        ))
        .build()
        .into()
}

fn template() -> Object {
    let mut t = key();
    t.description = Some("A named template (POST /templates) in place of the body: it must exist (else a 400 names it)".into());
    t
}

fn body() -> Object {
    ObjectBuilder::new()
        .description(Some(
            "The JSON body to send instead of the occurrence (string values are templates)",
        ))
        .build()
}

fn headers() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Extra request headers (not Host); write-only: responses show `***`",
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z][A-Za-z0-9-]{0,40}$")),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9 !#-)+-~]{0,200}$")),
        ))
        .max_properties(Some(HEADERS_MAX))
        .build()
}

/// The `params` of a `webhook` or `apicall`, with an inline `body` or a named `template`.
fn http_params(apicall: bool, named: bool) -> Object {
    let mut p = closed().property("url", http_url()).required("url");
    if apicall {
        p = p
            .property(
                "method",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(METHODS))
                    .description(Some("Default POST")),
            )
            .property("headers", headers());
    }
    if named {
        p = p
            .property("template", template())
            .property("template_version", template_version())
            .required("template");
    } else {
        p = p.property("body", body());
    }
    p.build()
}

fn recipients() -> Schema {
    ArrayBuilder::new()
        .items(email())
        .min_items(Some(1))
        .max_items(Some(RECIPIENTS_MAX))
        .build()
        .into()
}

fn email_params(named: bool) -> Object {
    let p = closed().property("to", recipients()).required("to");
    if named {
        return p
            .property("template", template())
            .property("template_version", template_version())
            .required("template")
            .build();
    }
    p.property("subject", text(998))
        .property("text", ObjectBuilder::new().schema_type(Type::String))
        .property("html", ObjectBuilder::new().schema_type(Type::String))
        .required("subject")
        .required("text")
        .build()
}

/// An action as a request gives it.
pub fn action_in() -> Schema {
    OneOfBuilder::new()
        .description(Some(
            "How each occurrence is delivered: a signed webhook POST, an API call, a message to a WebSocket client, \
a pull queue, or an email (the server needs SMTP: else a 422)",
        ))
        .item(variant("webhook", "POST of the signed occurrence body (or `body`) to `url`", http_params(false, false)))
        .item(variant("webhook", "POST of a named template's body to `url`", http_params(false, true)))
        .item(variant("apicall", "A request exactly as written (string values of `body` are templates)", http_params(true, false)))
        .item(variant("apicall", "A request with a named template's body", http_params(true, true)))
        .item(variant(
            "websocket",
            "A message to the connected `GET /ws` client of this name, which acknowledges it",
            closed().property("client_name", key()).required("client_name").build(),
        ))
        .item(variant(
            "pull",
            "Waits in a queue that clients claim from (`POST /queues/{queue}/claim`)",
            closed().property("queue", key()).required("queue").build(),
        ))
        .item(variant("email", "An email: `subject` and `text` (and `html`) are templates", email_params(false)))
        .item(variant("email", "An email from a named template", email_params(true)))
        .build()
        .into()
}
