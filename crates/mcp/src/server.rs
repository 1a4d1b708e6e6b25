//! The MCP server: the tools of `tools.rs`, two resources and two prompts, over any transport.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::api::Api;
use crate::tools;

const RECURRENCE_DOC: &str = include_str!("../../../docs/recurrence.md");
const RECURRENCE_URI: &str = "qhronos://docs/recurrence";
const EVENT_URI: &str = "qhronos://events/";

/// Qhronos as an MCP server over `A`.
pub struct QhronosMcp<A: Api> {
    api: Arc<A>,
}

impl<A: Api> Clone for QhronosMcp<A> {
    fn clone(&self) -> Self {
        QhronosMcp {
            api: self.api.clone(),
        }
    }
}

impl<A: Api> QhronosMcp<A> {
    /// A server whose tools call `api`.
    pub fn new(api: Arc<A>) -> QhronosMcp<A> {
        QhronosMcp { api }
    }
}

/// The HTTP request the call came in, when the transport is HTTP.
fn auth(ctx: &RequestContext<RoleServer>) -> Option<&http::request::Parts> {
    ctx.extensions.get::<http::request::Parts>()
}

fn text_result(v: &Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
    if v.is_object() {
        r.structured_content = Some(v.clone());
    }
    r
}

fn prompts() -> Vec<Prompt> {
    vec![
        Prompt::new(
            "remind_me",
            Some("Schedule a reminder in words: what, when (a time, a delay or a recurrence) and in which time zone."),
            Some(vec![
                PromptArgument::new("what").with_description("What to be reminded of").with_required(true),
                PromptArgument::new("when").with_description("\"in 20 minutes\", \"tomorrow at 9\", \"every weekday at 9\"").with_required(true),
                PromptArgument::new("timezone").with_description("IANA zone, e.g. Europe/Berlin"),
            ]),
        ),
        Prompt::new(
            "check_delivery",
            Some("Find out whether an event's deliveries went through, and retry the failed ones."),
            Some(vec![PromptArgument::new("event_id").with_description("The event's id").with_required(true)]),
        ),
    ]
}

fn prompt_text(name: &str, args: &serde_json::Map<String, Value>) -> Option<String> {
    let arg = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(match name {
        "remind_me" => format!(
            "Schedule a reminder with the `schedule` tool. What: {what}. When: {when}. Time zone: {tz}.\n\
             For a delay use `in` (\"20m\", \"2h\"); for a time use `at` (RFC 3339 with the zone's offset); for a \
             repetition use `rule` (RRULE, e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0) with `timezone`. \
             Check a rule with `preview_schedule` first. Deliver to a pull queue named after yourself if you have \
             no URL, and poll it with `claim`.",
            what = arg("what"),
            when = arg("when"),
            tz = if arg("timezone").is_empty() { "UTC".to_string() } else { arg("timezone") },
        ),
        "check_delivery" => format!(
            "Call `list_deliveries` with event_id {id} and attempts: true. Report each occurrence's status and, for \
             failed ones, the last attempt's status code and error. Offer `retry_delivery` for failed or missed ones.",
            id = arg("event_id")
        ),
        _ => return None,
    })
}

impl<A: Api> ServerHandler for QhronosMcp<A> {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        );
        info.server_info = Implementation::new("qhronos", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Qhronos schedules deliveries: one-time (\"wake me in 20 minutes\") or recurring (RFC 5545 rules in any \
             time zone), each delivered durably to a signed webhook, a WebSocket client, a pull queue or an email, \
             retried until acknowledged, every attempt recorded. Times are RFC 3339; rules are evaluated in the \
             event's `timezone`."
                .into(),
        );
        info
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = tools::list()
            .into_iter()
            .map(|t| {
                let schema = match t.schema {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                Tool::new(t.name, t.description, Arc::new(schema))
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = req.arguments.unwrap_or_default();
        let auth = auth(&ctx);
        Ok(
            match tools::call(&*self.api, auth, &req.name, &args).await {
                Ok(v) => text_result(&v),
                // A tool error, not a protocol one: the agent reads the REST API's message.
                Err(e) => CallToolResult::error(vec![ContentBlock::text(e.0)]),
            }
            .into(),
        )
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let doc = Resource::new(RECURRENCE_URI, "recurrence").with_description(
            "How Qhronos reads recurrence rules: RRULE parts, time zones, DST, limits",
        );
        Ok(ListResourcesResult::with_all_items(vec![doc]))
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let t = ResourceTemplate::new(format!("{EVENT_URI}{{id}}"), "event")
            .with_description("An event as JSON (as get_event returns it)");
        Ok(ListResourceTemplatesResult::with_all_items(vec![t]))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if req.uri == RECURRENCE_URI {
            let c = ResourceContents::text(RECURRENCE_DOC, req.uri.clone());
            return Ok(ReadResourceResult::new(vec![c]).into());
        }
        if let Some(id) = req.uri.strip_prefix(EVENT_URI) {
            let args = json!({"id": id});
            let args = args.as_object().cloned().unwrap_or_default();
            let auth = auth(&ctx);
            return match tools::call(&*self.api, auth, "get_event", &args).await {
                Ok(v) => {
                    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                    Ok(
                        ReadResourceResult::new(vec![ResourceContents::text(
                            text,
                            req.uri.clone(),
                        )])
                        .into(),
                    )
                }
                Err(e) => Err(McpError::resource_not_found(e.0, None)),
            };
        }
        Err(McpError::resource_not_found(
            format!(
                "no resource {}; there are {RECURRENCE_URI} and {EVENT_URI}{{id}}",
                req.uri
            ),
            None,
        ))
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts()))
    }

    async fn get_prompt(
        &self,
        req: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let args = req.arguments.unwrap_or_default();
        let text = prompt_text(&req.name, &args)
            .ok_or_else(|| McpError::invalid_params(format!("no prompt {:?}", req.name), None))?;
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
    }
}
