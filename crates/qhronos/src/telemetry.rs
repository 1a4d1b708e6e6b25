//! Logging: text for a terminal, JSON with `log_format: json`. `RUST_LOG` wins over `log_level`.
//!
//! A JSON line is one object: `timestamp`, `level`, `target`, `fields` (the event's message and
//! fields), `span` (the innermost span's name and fields: for a request `method`, `path` and
//! `request_id`) and `spans` (every open span, outermost first). See docs/operations.md.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(level: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a terminal, so that a log file holds plain text.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr closed by whoever started us) is dropped.
        // The default reports it with `eprintln!`, which panics on that same closed stderr,
        // inside whatever request was being logged.
        .log_internal_errors(false);
    let _ = if format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder.try_init()
    };
}
